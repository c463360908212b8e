"""The default model's recipe: a genre head on MSD-musicnn taggrams, chosen and measured by
artist-grouped cross-validation inside the training tracks only.

The head classifies every 3 s taggram row on its own and ``genrekit predict`` averages the row
probabilities of a track, so it runs unchanged on audio (taggrams from genrekit's musicnn port)
and on published taggram tables. Recipe (selected among ~45 by 3 x 5-fold artist-grouped CV on
the 443 training tracks of the artist-filtered GTZAN split; see ``docs/results.md``):
``logit(p)`` standardised with the training rows' mean and std, one dense ReLU layer of 128
with dropout 0.5, AdamW (weight decay 0.1) with a one-cycle schedule peaking at 3e-3, batch
128, 5 epochs; one softmax temperature fitted on out-of-fold track probabilities.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from genrekit.data.folds import group_kfold
from genrekit.data.tables import FeatureTable
from genrekit.evaluation.metrics import (
    classification_metrics,
    expected_calibration_error,
    softmax,
    track_probabilities,
)
from genrekit.models.registry import build_model
from genrekit.training.calibration import minimize_temperature
from genrekit.training.loop import balanced_class_weights


@dataclass(frozen=True)
class HeadRecipe:
    """Hyper-parameters of the taggram head (defaults: the selected recipe).

    Attributes
    ----------
    hidden : int
        Width of the MLP's dense ReLU layer.
    dropout, weight_decay : float
    max_learning_rate : float
        Peak of the one-cycle learning-rate schedule (AdamW).
    epochs, batch_size : int
    input_transform : {"logit", None}
        How the taggram's probabilities enter the network.
    label_smoothing : float
    class_balance : bool
        Weight each genre's rows by the inverse of its share of the training rows.
    """

    hidden: int = 128
    dropout: float = 0.5
    weight_decay: float = 0.1
    max_learning_rate: float = 3e-3
    epochs: int = 5
    batch_size: int = 128
    input_transform: str = "logit"
    label_smoothing: float = 0.0
    #: weight each genre's rows by the inverse of its share of the training rows (blues, rock)
    class_balance: bool = False

    def architecture(self, n_features: int) -> dict:
        """The head's architecture spec for :func:`genrekit.models.registry.build_model`.

        Parameters
        ----------
        n_features : int
            Width of a row (50 for the taggram).

        Returns
        -------
        dict
            An ``mlp`` spec.
        """
        return {"name": "mlp", "input_shape": [n_features], "hidden": self.hidden, "dropout": self.dropout,
                "input_transform": self.input_transform}


def fit_head(features: np.ndarray, y: np.ndarray, n_classes: int, recipe: HeadRecipe = HeadRecipe(),
             seed: int = 0) -> nn.Module:
    """Train the head on rows ``features`` ``(n, n_features)`` with class indices ``y``.

    The input batch norm is frozen at the training rows' statistics (a plain standardisation),
    so the network in eval mode computes exactly what it was trained with.

    Parameters
    ----------
    features : np.ndarray
        Shape ``(n, n_features)``, taggram rows (probabilities).
    y : np.ndarray
        int, shape ``(n,)``: class indices.
    n_classes : int
    recipe : HeadRecipe
    seed : int, default 0
        Seeds the initialisation and the batch order.

    Returns
    -------
    nn.Module
        The trained ``mlp`` in eval mode.
    """
    torch.manual_seed(seed)
    network = build_model(recipe.architecture(features.shape[1]), n_classes)
    x = torch.as_tensor(features, dtype=torch.float32)
    with torch.no_grad():
        transformed = torch.logit(x.clamp(1e-6, 1 - 1e-6)) if recipe.input_transform == "logit" else x
        network.norm.running_mean.copy_(transformed.mean(0))
        network.norm.running_var.copy_(transformed.var(0, unbiased=False).clamp_min(1e-6) - network.norm.eps)
        network.norm.running_var.clamp_(min=1e-8)
        network.norm.weight.fill_(1.0)
        network.norm.bias.zero_()
    network.norm.requires_grad_(False)
    targets = torch.as_tensor(y, dtype=torch.int64)
    class_weight = balanced_class_weights(np.asarray(y), n_classes) if recipe.class_balance else None
    optimizer = torch.optim.AdamW([p for p in network.parameters() if p.requires_grad],
                                  lr=recipe.max_learning_rate / 3, weight_decay=recipe.weight_decay)
    steps = recipe.epochs * math.ceil(len(x) / recipe.batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=recipe.max_learning_rate, total_steps=steps)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(recipe.epochs):
        network.train()
        network.norm.eval()  # keep the standardisation fixed
        for batch in torch.randperm(len(x), generator=generator).split(recipe.batch_size):
            loss = nn.functional.cross_entropy(network(x[batch]), targets[batch], weight=class_weight,
                                               label_smoothing=recipe.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
    return network.eval()


@torch.no_grad()
def row_logits(network: nn.Module, features: np.ndarray) -> np.ndarray:
    """The head's logits of feature rows, in eval mode and without gradients.

    Parameters
    ----------
    network : nn.Module
        A fitted head (:func:`fit_head`).
    features : np.ndarray
        Shape ``(n_rows, n_features)``.

    Returns
    -------
    np.ndarray
        float64, shape ``(n_rows, n_classes)``.
    """
    return network.eval()(torch.as_tensor(features, dtype=torch.float32)).numpy().astype(np.float64)


@dataclass
class CrossValidatedHead:
    """Out-of-fold results of the recipe: track probabilities at T = 1, per repeat.

    Attributes
    ----------
    labels : list of str
    track_labels : np.ndarray
        int, shape ``(n_tracks,)``: each track's class index.
    fold_accuracies : list of float
        Track accuracy of every fold of every repeat.
    oof_logits : list of np.ndarray
        One ``(n_rows, n_classes)`` array of out-of-fold logits per repeat.
    notes : list of str
    """

    labels: list[str]
    track_labels: np.ndarray
    fold_accuracies: list[float]
    oof_logits: list[np.ndarray]  # one (n_rows, n_classes) array per repeat
    notes: list[str] = field(default_factory=list)


def cross_validate_head(table: FeatureTable, groups: list[str], labels: list[str], *, folds: int = 5,
                        repeats: int = 3, recipe: HeadRecipe = HeadRecipe()) -> CrossValidatedHead:
    """Artist-grouped, genre-stratified k-fold CV of the head on ``table``, ``repeats`` times.

    Parameters
    ----------
    table : FeatureTable
        One row per window (``track_index`` says whose), with track labels.
    groups : list of str
        Each track's artist group (:func:`genrekit.data.tables.gtzan_groups`).
    labels : list of str
        The genres, in output order.
    folds : int, default 5
    repeats : int, default 3
    recipe : HeadRecipe

    Returns
    -------
    CrossValidatedHead
    """

    def fit(features, y, n_classes, seed):
        network = fit_head(features, y, n_classes, recipe, seed=seed)
        return lambda rows: row_logits(network, rows)

    return cross_validate_rows(table, groups, labels, fit, folds=folds, repeats=repeats)


def cross_validate_rows(table: FeatureTable, groups: list[str], labels: list[str], fit, *, folds: int = 5,
                        repeats: int = 3) -> CrossValidatedHead:
    """Artist-grouped, genre-stratified k-fold CV of any row classifier on ``table``.

    ``fit(features, y, n_classes, seed)`` trains on the training rows and returns a function from
    rows to ``(n_rows, n_classes)`` logits (log-probabilities will do); a track's answer is the
    mean of its rows' softmax probabilities. Repeat ``r`` shuffles the folds with seed ``r``
    (:func:`genrekit.data.folds.group_kfold`, the folds of every track-level split, always
    stratified), so every classifier given the same table and groups sees the same folds and
    their fold accuracies pair up.

    Parameters
    ----------
    table : FeatureTable
        One row per window (``track_index`` says whose), with track labels.
    groups : list of str
        Each track's artist group (:func:`genrekit.data.tables.gtzan_groups`).
    labels : list of str
        The genres, in output order.
    fit : callable
        ``fit(features, y, n_classes, seed) -> predict``, as above.
    folds : int, default 5
    repeats : int, default 3

    Returns
    -------
    CrossValidatedHead
    """
    code = {label: i for i, label in enumerate(labels)}
    track_y = np.array([code[label] for label in table.labels])
    row_y = track_y[table.track_index]
    accuracies, oof = [], []
    for repeat in range(repeats):
        logits = np.zeros((len(table), len(labels)))
        everything = np.arange(len(track_y))
        for test_tracks in group_kfold(track_y, np.asarray(groups), folds, seed=repeat, always_stratify=True):
            train_tracks = np.setdiff1d(everything, test_tracks)
            train_rows = np.isin(table.track_index, train_tracks)
            predict = fit(table.features[train_rows], row_y[train_rows], len(labels), repeat)
            logits[~train_rows] = predict(table.features[~train_rows])
            test_rows = np.isin(table.track_index, test_tracks)
            per_track = track_probabilities(softmax(logits[test_rows]), table.track_index[test_rows],
                                            len(track_y))[test_tracks]
            accuracies.append(float((per_track.argmax(1) == track_y[test_tracks]).mean()))
        oof.append(logits)
    return CrossValidatedHead(list(labels), track_y, accuracies, oof)


def fit_track_temperature(cv: CrossValidatedHead, track_index: np.ndarray) -> float:
    """The temperature minimising the NLL of mean-aggregated out-of-fold track probabilities.

    Fitted on tracks, not rows: averaging row probabilities already softens them, so a
    row-level fit over-softens the track answer (worse track calibration).

    Parameters
    ----------
    cv : CrossValidatedHead
    track_index : np.ndarray
        int, shape ``(n_rows,)``: each row's track.

    Returns
    -------
    float
        In [0.2, 5].
    """
    n_tracks = len(cv.track_labels)

    def nll(log_t: float) -> float:
        total = 0.0
        for logits in cv.oof_logits:
            per_track = track_probabilities(softmax(logits / math.exp(log_t)), track_index, n_tracks)
            total -= np.log(np.clip(per_track[np.arange(n_tracks), cv.track_labels], 1e-12, None)).mean()
        return total / len(cv.oof_logits)

    return minimize_temperature(nll, 0.2, 5.0)


def summarize_head(cv: CrossValidatedHead, track_index: np.ndarray, temperature: float) -> dict:
    """Mean/std accuracy over folds, out-of-fold metrics (first repeat) and ECE at T = 1 and T.

    Parameters
    ----------
    cv : CrossValidatedHead
    track_index : np.ndarray
        int, shape ``(n_rows,)``: each row's track.
    temperature : float
        The fitted track temperature.

    Returns
    -------
    dict
        ``track_accuracy_mean``, ``track_accuracy_std``, ``n_folds``, ``n_tracks``,
        ``out_of_fold`` metrics, ``ece_before``, ``ece_after``, ``temperature`` and the
        out-of-fold accuracy at 1 s and 3 s prediction hops.
    """
    n_tracks = len(cv.track_labels)
    per_track = {t: [track_probabilities(softmax(logits / t), track_index, n_tracks) for logits in cv.oof_logits]
                 for t in (1.0, temperature)}
    metrics = classification_metrics(cv.track_labels, per_track[temperature][0].argmax(1), cv.labels)
    return {
        "track_accuracy_mean": float(np.mean(cv.fold_accuracies)),
        "track_accuracy_std": float(np.std(cv.fold_accuracies, ddof=1)),
        "n_folds": len(cv.fold_accuracies),
        "n_tracks": n_tracks,
        "out_of_fold": metrics,
        "ece_before": float(np.mean([expected_calibration_error(p, cv.track_labels) for p in per_track[1.0]])),
        "ece_after": float(np.mean([expected_calibration_error(p, cv.track_labels) for p in per_track[temperature]])),
        "temperature": temperature,
        # does the prediction hop matter? rows are 1 s apart; every third row is a 3 s hop, as
        # `genrekit predict` cuts (out-of-fold tracks, mean over repeats)
        "oof_track_accuracy_1s_hop": _oof_accuracy(cv, track_index, np.ones(len(track_index), bool)),
        "oof_track_accuracy_3s_hop": _oof_accuracy(cv, track_index, _row_positions(track_index) % 3 == 0),
    }


def _row_positions(track_index: np.ndarray) -> np.ndarray:
    """Position of each row within its track (rows of a track are consecutive)."""
    starts = np.flatnonzero(np.r_[True, track_index[1:] != track_index[:-1]])
    return np.arange(len(track_index)) - np.repeat(starts, np.diff(np.r_[starts, len(track_index)]))


def _oof_accuracy(cv: CrossValidatedHead, track_index: np.ndarray, rows: np.ndarray) -> float:
    n_tracks = len(cv.track_labels)
    accuracies = [(track_probabilities(softmax(logits[rows]), track_index[rows], n_tracks).argmax(1)
                   == cv.track_labels).mean() for logits in cv.oof_logits]
    return float(np.mean(accuracies))
