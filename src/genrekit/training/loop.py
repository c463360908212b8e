"""The epoch loop of a network: seeded batches, augmentation, early stopping, checkpoints.

:func:`train_model` is the entry point for every recipe; scikit-learn baselines are fitted by
:mod:`genrekit.training.classical` instead of looping.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from genrekit.data.extract import SegmentFeatures
from genrekit.errors import UsageError
from genrekit.models.registry import predict_logits
from genrekit.training.augment import build_augmentations
from genrekit.training.checkpoints import (
    _check_same_recipe,
    _LoopState,
    _restore,
    checkpoint_paths,
    read_checkpoint,
    write_checkpoint,
)
from genrekit.training.config import TrainConfig
from genrekit.training.run import (
    TrainResult,
    _track_labels,
    finish_training,
    prepare_data,
)
from genrekit.utils import track

logger = logging.getLogger(__name__)


def train_model(config: TrainConfig, *, resume: str | Path | None = None, quiet: bool = False) -> TrainResult:
    """Train, calibrate and save a model as ``config.out`` (``.json`` + ``.safetensors``).

    Parameters
    ----------
    config : TrainConfig
    resume : path, optional
        A checkpoint written by an earlier run with the same recipe (``NAME.ckpt.json``,
        ``NAME.ckpt.safetensors`` or ``NAME.ckpt``): training continues after its last epoch.
        ``epochs`` and ``patience`` may differ, e.g. to train longer.
    quiet : bool
        Log the per-epoch lines at DEBUG instead of INFO (inner folds of a search).

    Returns
    -------
    TrainResult

    Raises
    ------
    DatasetError, UsageError, GenrekitError
        Unusable dataset, split or settings; a checkpoint from another recipe.
    """
    from genrekit.evaluation.metrics import summarize_predictions
    from genrekit.models.registry import build_model, model_summary

    config.validate()
    if config.architecture.get("name", "").startswith("sklearn-"):
        if resume:
            raise UsageError("scikit-learn baselines train in one go: there is nothing to resume")
        from genrekit.training.classical import train_baseline

        return train_baseline(config)
    started = time.perf_counter()
    checkpoint = read_checkpoint(resume) if resume else None
    if checkpoint is not None:
        _check_same_recipe(config, TrainConfig.from_dict(checkpoint["spec"]["config"]), resume)
    device = _pick_device(config.device)
    wave_augment, spec_augment = build_augmentations(config.augment)
    data = prepare_data(config, device, keep_train_waveforms=wave_augment.active)
    labels, train_set, valid_set = data.labels, data.train_set(), data.valid_set()

    torch.manual_seed(config.seed)
    network = build_model(config.architecture, len(labels), data.input_shape(config)).to(device)
    logger.info(f"network: {model_summary(network)} on {device}")
    optimizer = torch.optim.AdamW(network.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    y_train = train_set.labels(labels)
    class_weights = balanced_class_weights(y_train, len(labels)) if config.class_weights else None
    loss_fn = nn.CrossEntropyLoss(weight=None if class_weights is None else class_weights.to(device))

    state = _LoopState()
    if checkpoint is not None:
        state = _restore(checkpoint, network, optimizer, device)
        logger.info(f"resuming after epoch {state.epoch} from {checkpoint_paths(resume)[0]}")
    feature_modules = data.modules if wave_augment.active else None
    training_started = time.perf_counter()
    while state.epoch < config.epochs and not state.stopped(config.patience):
        epoch = state.epoch + 1
        epoch_started = time.perf_counter()
        torch.manual_seed(_epoch_seed(config.seed, epoch))
        train_loss, train_accuracy = _train_epoch(
            network, optimizer, loss_fn, train_set, y_train, config.batch_size, device,
            wave_augment, spec_augment, feature_modules, f"epoch {epoch}/{config.epochs}",
        )
        row = {"epoch": epoch, "train_loss": train_loss, "train_accuracy": train_accuracy}
        if valid_set is not None:
            logits = predict_logits(network, valid_set.inputs, config.batch_size, device)
            y_valid = valid_set.labels(labels)
            row["valid_loss"] = float(nn.functional.cross_entropy(logits, torch.as_tensor(y_valid)))
            summary = summarize_predictions(
                torch.softmax(logits, 1).numpy(), valid_set.track_index,
                _track_labels(valid_set, labels), labels, valid_set.weights,
            )
            row["valid_accuracy"] = summary["segment_accuracy"]
            row["valid_track_accuracy"] = summary["track_accuracy"]
        row["seconds"] = round(time.perf_counter() - epoch_started, 3)
        state.record(row, network, improved_by=row.get("valid_loss", row["train_loss"]))
        logger.log(logging.DEBUG if quiet else logging.INFO, _epoch_line(row, config.epochs))
        if config.checkpoint:
            write_checkpoint(config, state, network, optimizer)
    training_seconds = time.perf_counter() - training_started

    if state.best_state is not None and valid_set is not None:
        network.load_state_dict(state.best_state)
    training = {
        "epochs_run": state.epoch,
        "best_epoch": state.best_epoch,
        "stopped_early": state.stopped(config.patience) and state.epoch < config.epochs,
        "history": state.history,
        "class_weights": None if class_weights is None else class_weights.tolist(),
    }
    return finish_training(config, network, data, training, started, training_seconds, device)


def _epoch_seed(seed: int, epoch: int) -> int:
    return (seed * 1_000_003 + epoch) % 2**63


def _train_epoch(network, optimizer, loss_fn, data, y, batch_size, device, wave_augment, spec_augment,
                 feature_modules, description) -> tuple[float, float]:
    """One pass over ``data`` in a seeded random order; returns (mean loss, accuracy)."""
    network.train()
    wave_augment.train()
    spec_augment.train()
    order = torch.randperm(len(y))
    # a last batch of one would break batch norm; fold it into the previous one
    batches = list(order.split(batch_size))
    if len(batches) > 1 and len(batches[-1]) == 1:
        batches[-2:] = [torch.cat(batches[-2:])]
    targets = torch.as_tensor(y)
    total_loss, correct = 0.0, 0
    for index in track(batches, description, total=len(batches)):
        inputs = _batch_inputs(data, index, device, wave_augment, feature_modules)
        inputs = [spec_augment(x) for x in inputs]
        target = targets[index].to(device)
        logits = network(inputs if network.spec.get("name") == "parallel" else inputs[0])
        loss = loss_fn(logits, target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total_loss += float(loss.detach()) * len(index)
        correct += int((logits.argmax(1) == target).sum())
    return total_loss / len(y), correct / len(y)


def _batch_inputs(data: SegmentFeatures, index, device, wave_augment, feature_modules) -> list[torch.Tensor]:
    if feature_modules is None:
        return [torch.as_tensor(x[index.numpy()]).to(device) for x in data.inputs]
    waves = wave_augment(torch.as_tensor(data.waveforms[index.numpy()]).to(device))
    with torch.no_grad():
        return [module(waves) for module in feature_modules]


def balanced_class_weights(y: np.ndarray, n_classes: int) -> torch.Tensor:
    """Loss weights that balance the classes: ``n / (n_classes * count)`` per class.

    Parameters
    ----------
    y : np.ndarray
        int, shape ``(n,)``: class indices of the training examples.
    n_classes : int

    Returns
    -------
    torch.Tensor
        float32, shape ``(n_classes,)``; 1 for a class without examples.
    """
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    weights = np.where(counts > 0, len(y) / (n_classes * np.maximum(counts, 1)), 1.0)
    return torch.tensor(weights, dtype=torch.float32)


def _pick_device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UsageError("device cuda requested but torch sees no CUDA device")
        # autotuned cuDNN kernels differ from run to run; fixed ones keep GPU runs close to repeatable
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    return torch.device(name)


def _epoch_line(row: dict, epochs: int) -> str:
    line = f"epoch {row['epoch']}/{epochs}: train loss {row['train_loss']:.3f} acc {row['train_accuracy']:.3f}"
    if "valid_loss" in row:
        line += (f", valid loss {row['valid_loss']:.3f} acc {row['valid_accuracy']:.3f}"
                 f" (tracks {row['valid_track_accuracy']:.3f})")
    return line + f", {row['seconds']:.1f} s"
