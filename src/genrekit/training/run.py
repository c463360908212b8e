"""The common start and end of every training run: data, split and features in; calibrated,
scored model file out."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from genrekit.data.extract import (
    SegmentFeatures,
    extract_features,
    feature_cache_key,
    open_cache,
)
from genrekit.data.splits import data_fingerprint, limit_tracks, split_tracks
from genrekit.features.registry import resolve_feature
from genrekit.models.registry import predict_logits
from genrekit.models.spec import ModelSpec
from genrekit.training.calibration import fit_temperature
from genrekit.training.checkpoints import (
    save_trained_model,
)
from genrekit.training.config import TrainConfig
from genrekit.utils import finite_json

logger = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """What :func:`genrekit.training.loop.train_model` returns.

    Attributes
    ----------
    model_path : Path
        The model file written.
    spec : dict
        Its JSON spec.
    network : nn.Module
        The trained network (eval mode).
    metrics : dict
        ``"valid"`` and ``"test"`` summaries (see
        :func:`genrekit.evaluation.metrics.summarize_predictions`).
    history : list of dict
        One row per epoch (loss, accuracy); empty for classical baselines.
    best_epoch : int
        The epoch whose weights were kept.
    timings : dict
        Seconds spent on ``"features"``, ``"training"`` and ``"total"``.
    n_parameters : int
        Trainable parameters of the network.
    """

    model_path: Path
    spec: ModelSpec
    network: nn.Module
    metrics: dict
    history: list[dict]
    best_epoch: int
    timings: dict
    n_parameters: int


@dataclass
class PreparedData:
    """A run's labels, split and segment features (see :func:`prepare_data`).

    Attributes
    ----------
    labels : list of str
        Sorted labels of the dataset.
    parts : Split
        Train, valid and test tracks.
    split_record : dict
        How the split was made (written to the model file).
    features : dict of str to SegmentFeatures
        ``"train"``, ``"valid"``, ``"test"`` -> their segments' features.
    seconds : float
        Time spent preparing.
    feature : dict or list of dict
        The complete feature spec(s).
    modules : list of nn.Module
        The feature front ends (empty for a feature table).
    fingerprint : str or None
        Identity of the data; ``None``: computed from the tracks' audio files.
    sample_rate : int or None
        A feature table's rate in Hz; ``None``: the config's.
    """

    labels: list[str]
    parts: Any
    split_record: dict
    features: dict
    seconds: float
    feature: dict | list
    modules: list
    fingerprint: str | None = None  # None: computed from the tracks' audio files
    sample_rate: int | None = None  # None: the config's

    def train_set(self) -> SegmentFeatures:
        """Training segments without the silent ones (they carry no genre).

        Returns
        -------
        SegmentFeatures
        """
        train = self.features["train"]
        return train.select(~train.silent)

    def valid_set(self) -> SegmentFeatures | None:
        """Validation segments as evaluation sees them (silent ones left out).

        Returns
        -------
        SegmentFeatures or None
            None without validation tracks.
        """
        from genrekit.evaluation.metrics import voiced_mask

        valid = self.features.get("valid")
        return None if valid is None else valid.select(voiced_mask(valid.silent, valid.track_index))

    def input_shape(self, config: TrainConfig):
        """Shape of one training segment's features.

        Parameters
        ----------
        config : TrainConfig
            The run (a list of features gives one shape per feature).

        Returns
        -------
        list of int, or list of list of int
        """
        shapes = [list(x.shape[1:]) for x in self.features["train"].inputs]
        return shapes if isinstance(config.feature, list) else shapes[0]


def prepare_data(config: TrainConfig, device, *, keep_train_waveforms: bool = False) -> PreparedData:
    """Open the dataset, split it at track level and compute (or read from cache) all features.

    Parameters
    ----------
    config : TrainConfig
        The run; ``config.dataset`` may also be a feature table (no audio is read then).
    device : str or torch.device
        Where the feature front ends run.
    keep_train_waveforms : bool, default False
        Keep the training windows' samples (for waveform augmentation).

    Returns
    -------
    PreparedData
    """
    from genrekit.data.datasets import open_dataset
    from genrekit.data.tables import is_table

    if is_table(config.dataset):
        return _prepare_table(config)
    started = time.perf_counter()
    resolved = [resolve_feature(spec, config.sample_rate) for spec in config.feature_specs]
    specs, modules = [spec for spec, _ in resolved], [module.to(device) for _, module in resolved]
    dataset = open_dataset(config.dataset, config.dataset_kind)
    dataset.tracks = limit_tracks(dataset.tracks, config.limit_per_label)
    labels = sorted({t.label for t in dataset.tracks})
    parts, split_record = split_tracks(dataset, config.split, config.seed)
    logger.info(
        f"{config.dataset}: {len(labels)} labels; tracks train {len(parts.train)}, "
        f"valid {len(parts.valid)}, test {len(parts.test)} ({split_record['method']} split)"
    )
    cache = open_cache(config.cache_dir)
    features = {}
    for side, tracks in zip(("train", "valid", "test"), parts):
        if tracks:
            features[side] = extract_features(
                tracks, specs, sample_rate=config.sample_rate, segment=config.segment,
                cache=cache, keep_waveforms=side == "train" and keep_train_waveforms, device=device,
                modules=modules, description=f"{side} features",
            )
    feature = specs if isinstance(config.feature, list) else specs[0]
    return PreparedData(labels, parts, split_record, features, time.perf_counter() - started, feature, modules)


def _prepare_table(config: TrainConfig) -> PreparedData:
    """A feature table's rows as the run's segment features (no audio, no front end)."""
    from genrekit.data.tables import (
        read_table,
        table_dataset,
        table_feature,
        table_fingerprint,
        table_segments,
    )
    from genrekit.errors import UsageError

    started = time.perf_counter()
    if config.augment:
        raise UsageError(f"{config.dataset}: augmentation works on audio; a feature table has none")
    table = read_table(config.dataset)
    default_feature = TrainConfig.__dataclass_fields__["feature"].default_factory()
    given = None if config.feature == default_feature else config.feature
    feature, sample_rate = table_feature(given, table, config.sample_rate, float(config.segment.get("window", 3.0)))
    dataset = table_dataset(table)
    dataset.tracks = limit_tracks(dataset.tracks, config.limit_per_label)
    labels = sorted({t.label for t in dataset.tracks})
    parts, split_record = split_tracks(dataset, config.split, config.seed)
    logger.info(
        f"{config.dataset}: feature table of {len(table)} rows x {table.features.shape[1]} ({feature.get('name')} "
        f"{feature.get('layer', '')}); {len(labels)} labels; tracks train {len(parts.train)}, "
        f"valid {len(parts.valid)}, test {len(parts.test)} ({split_record['method']} split)"
    )
    features = {side: table_segments(table, tracks) for side, tracks in zip(("train", "valid", "test"), parts) if tracks}
    fingerprint = table_fingerprint(table, [t for part in parts for t in part])
    return PreparedData(labels, parts, split_record, features, time.perf_counter() - started, feature, [],
                        fingerprint=fingerprint, sample_rate=sample_rate)


def finish_training(config: TrainConfig, network: nn.Module, data: PreparedData, training: dict,
                    started: float, training_seconds: float, device) -> TrainResult:
    """Calibrate on validation, score valid and test, write the model file; the common end of every run.

    Parameters
    ----------
    config : TrainConfig
        The run.
    network : nn.Module
        The trained network (with its ``spec``).
    data : PreparedData
        What :func:`prepare_data` gave.
    training : dict
        The model file's ``training`` entry so far (``history``, ``best_epoch``, ...).
    started : float
        ``time.perf_counter()`` at the start of the run.
    training_seconds : float
        Time spent fitting.
    device : str or torch.device
        Where the network runs.

    Returns
    -------
    TrainResult
    """
    from genrekit.models.registry import count_parameters

    network.eval()
    labels = data.labels
    valid_set = data.valid_set()
    temperature, calibration = 1.0, {"temperature": 1.0, "method": "none"}
    if config.calibrate and valid_set is not None:
        logits = predict_logits(network, valid_set.inputs, config.batch_size, device)
        temperature, calibration = fit_temperature(logits, torch.as_tensor(valid_set.labels(labels)))
    metrics = {}
    for side in ("valid", "test"):
        if side in data.features:
            metrics[side] = _evaluate_side(network, data.features[side], labels, temperature, config.batch_size, device)
    n_parameters = count_parameters(network)
    timings = {
        "features": round(data.seconds, 3),
        "training": round(training_seconds, 3),
        "total": round(time.perf_counter() - started, 3),
    }
    spec = ModelSpec.from_dict(finite_json({
        "name": config.model_name,
        "labels": labels,
        "sample_rate": data.sample_rate or config.sample_rate,
        "segment": feature_cache_key({}, data.sample_rate or config.sample_rate, config.segment)["segment"],
        "feature": data.feature,
        "architecture": network.spec,
        "calibration": calibration,
        "metrics": metrics,
        "split": data.split_record,
        "data_fingerprint": data.fingerprint or data_fingerprint([t for part in data.parts for t in part]),
        "training": {
            "config": config.to_dict(),
            **training,
            "n_parameters": n_parameters,
            "device": str(device),
            "timings": timings,
            "failed_tracks": [
                {"track_id": t.track_id, "error": error}
                for part in data.features.values() for t, error in part.failed
            ],
            "torch_version": torch.__version__,
        },
    }), where=config.model_name)
    model_path = save_trained_model(config.out, spec, network)
    logger.info(f"saved {model_path}")
    return TrainResult(model_path, spec, network, metrics, training.get("history", []),
                       training.get("best_epoch", 0), timings, n_parameters)


def _evaluate_side(network, data: SegmentFeatures, labels, temperature, batch_size, device) -> dict:
    from genrekit.evaluation.metrics import summarize_predictions, voiced_mask

    data = data.select(voiced_mask(data.silent, data.track_index))
    logits = predict_logits(network, data.inputs, batch_size, device)
    probabilities = torch.softmax(logits / temperature, 1).numpy()
    return summarize_predictions(probabilities, data.track_index, _track_labels(data, labels), labels, data.weights)


def _track_labels(data: SegmentFeatures, labels: Sequence[str]) -> np.ndarray:
    code = {label: i for i, label in enumerate(labels)}
    return np.array([code[t.label] for t in data.tracks], dtype=np.int64)


