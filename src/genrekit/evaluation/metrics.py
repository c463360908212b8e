"""Metrics from segment probabilities (NumPy only): confusion matrix, accuracy, macro-F1, per-class
precision/recall, and track-level scores aggregated exactly as ``genrekit predict`` aggregates.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from genrekit.inference.aggregate import aggregate_probabilities


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Count how often each true class was predicted as each class.

    Parameters
    ----------
    y_true, y_pred : np.ndarray
        Class indices, int, shape ``(n,)``, in ``[0, n_classes)``.
    n_classes : int
        Number of classes.

    Returns
    -------
    np.ndarray
        int64, shape ``(n_classes, n_classes)``: row = true class, column = predicted class.

    Raises
    ------
    ValueError
        ``y_true`` and ``y_pred`` differ in shape.

    Examples
    --------
    >>> confusion_matrix([0, 0, 1, 2], [0, 1, 1, 2], n_classes=3)
    array([[1, 1, 0],
           [0, 1, 0],
           [0, 0, 1]])
    """
    y_true, y_pred = np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true {y_true.shape} and y_pred {y_pred.shape} differ in shape")
    flat = np.bincount(y_true * n_classes + y_pred, minlength=n_classes * n_classes)
    return flat.reshape(n_classes, n_classes)


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, labels: Sequence[str]) -> dict:
    """Accuracy, macro-F1, per-class precision / recall / F1 / support and the confusion matrix.

    Parameters
    ----------
    y_true, y_pred : np.ndarray, int
        Class indices ``(n,)`` into ``labels``.
    labels : sequence of str

    Returns
    -------
    dict
        ``accuracy``, ``macro_f1`` (mean F1 over the classes that occur in ``y_true`` or
        ``y_pred``, as scikit-learn's ``f1_score(average="macro")`` with its default labels),
        ``balanced_accuracy`` (mean recall over true classes), ``n``, ``per_class``
        (``{label: {precision, recall, f1, support}}``, 0.0 where undefined) and
        ``confusion`` (list of lists, rows true, columns predicted).
    """
    n_classes = len(labels)
    matrix = confusion_matrix(y_true, y_pred, n_classes)
    true_positives = np.diag(matrix).astype(np.float64)
    support = matrix.sum(axis=1)
    predicted = matrix.sum(axis=0)
    precision = np.divide(true_positives, predicted, out=np.zeros(n_classes), where=predicted > 0)
    recall = np.divide(true_positives, support, out=np.zeros(n_classes), where=support > 0)
    denominator = precision + recall
    f1 = np.divide(2 * precision * recall, denominator, out=np.zeros(n_classes), where=denominator > 0)
    present = (support > 0) | (predicted > 0)
    n = int(matrix.sum())
    return {
        "accuracy": float(true_positives.sum() / n) if n else math.nan,
        "macro_f1": float(f1[present].mean()) if present.any() else math.nan,
        "balanced_accuracy": float(recall[support > 0].mean()) if (support > 0).any() else math.nan,
        "n": n,
        "per_class": {
            label: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, label in enumerate(labels)
        },
        "confusion": matrix.tolist(),
    }


def track_probabilities(
    probabilities: np.ndarray, track_index: np.ndarray, n_tracks: int, weights: np.ndarray | None = None,
    method: str = "mean",
) -> np.ndarray:
    """Segment probabilities combined per track, exactly as ``genrekit predict`` combines them.

    Parameters
    ----------
    probabilities : np.ndarray
        ``(n_segments, n_classes)``.
    track_index : np.ndarray, int
        ``(n_segments,)`` track of each segment, in ``[0, n_tracks)``.
    n_tracks : int
    weights : np.ndarray, optional
        ``(n_segments,)`` non-negative weights (share of real audio); default 1.
    method : str
        ``"mean"`` or ``"vote"``: see :func:`genrekit.inference.aggregate.aggregate_probabilities`.

    Returns
    -------
    np.ndarray
        ``(n_tracks, n_classes)`` float64; rows of tracks without segments are NaN.
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    track_index = np.asarray(track_index)
    weights = np.ones(len(probabilities)) if weights is None else np.asarray(weights, dtype=np.float64)
    out = np.full((n_tracks, probabilities.shape[1]), np.nan)
    for track in np.unique(track_index):
        rows = track_index == track
        out[track] = aggregate_probabilities(probabilities[rows], method, weights[rows])
    return out


def voiced_mask(silent: np.ndarray, track_index: np.ndarray) -> np.ndarray:
    """Segments to score: not silent, except that an all-silent track keeps all its segments.

    Parameters
    ----------
    silent : np.ndarray
        bool, shape ``(n_segments,)``: the segment is below the silence threshold.
    track_index : np.ndarray
        int, shape ``(n_segments,)``: the track of each segment.

    Returns
    -------
    np.ndarray
        bool, shape ``(n_segments,)``.
    """
    silent = np.asarray(silent, dtype=bool)
    n_tracks = int(track_index.max()) + 1 if len(track_index) else 0
    voiced_per_track = np.bincount(track_index, weights=~silent, minlength=n_tracks)
    return ~silent | (voiced_per_track[track_index] == 0)


def summarize_predictions(
    probabilities: np.ndarray,
    track_index: np.ndarray,
    track_labels: np.ndarray,
    labels: Sequence[str],
    weights: np.ndarray | None = None,
    aggregate: str = "mean",
) -> dict:
    """Segment- and track-level metrics from segment probabilities.

    Parameters
    ----------
    probabilities : np.ndarray
        ``(n_segments, n_classes)`` calibrated probabilities of the segments to count.
    track_index : np.ndarray, int
        ``(n_segments,)`` index into ``track_labels``.
    track_labels : np.ndarray, int
        ``(n_tracks,)`` true class of each track.
    labels : sequence of str
    weights : np.ndarray, optional
        Segment weights for the track mean.

    Returns
    -------
    dict
        ``{"tracks": classification_metrics, "segments": classification_metrics,
        "track_accuracy", "segment_accuracy", "track_macro_f1", "segment_macro_f1",
        "n_tracks", "n_segments", "nll"}``: ``nll`` is the mean negative log-likelihood of the
        true class per segment. Tracks without segments are not counted.
    """
    track_labels = np.asarray(track_labels, dtype=np.int64)
    per_track = track_probabilities(probabilities, track_index, len(track_labels), weights, aggregate)
    counted = ~np.isnan(per_track).any(axis=1)
    segment_true = track_labels[track_index]
    segment_pred = np.asarray(probabilities).argmax(axis=1)
    tracks = classification_metrics(track_labels[counted], per_track[counted].argmax(axis=1), labels)
    segments = classification_metrics(segment_true, segment_pred, labels)
    true_probability = np.asarray(probabilities)[np.arange(len(segment_true)), segment_true]
    return {
        "track_accuracy": tracks["accuracy"],
        "track_macro_f1": tracks["macro_f1"],
        "segment_accuracy": segments["accuracy"],
        "segment_macro_f1": segments["macro_f1"],
        "n_tracks": int(counted.sum()),
        "n_segments": int(len(segment_true)),
        "nll": float(-np.mean(np.log(np.maximum(true_probability, 1e-12)))) if len(segment_true) else math.nan,
        "tracks": tracks,
        "segments": segments,
    }


#: What the track metrics call an answer that is not a genre.
NOT_MUSIC, SILENT = "not music", "silent"


def answer_name(prediction) -> str:
    """A :class:`~genrekit.inference.predict.Prediction`'s answer: its genre, :data:`NOT_MUSIC` or :data:`SILENT`."""
    if prediction.genre is not None:
        return prediction.genre
    return NOT_MUSIC if prediction.not_music else SILENT


def answer_metrics(true_labels: Sequence[str], answers: Sequence[str], labels: Sequence[str]) -> dict:
    """Track-level metrics of the answers ``genrekit predict`` gives.

    Parameters
    ----------
    true_labels : sequence of str
        The genre of each track.
    answers : sequence of str
        What was predicted for each track (:func:`answer_name`): a genre, :data:`NOT_MUSIC` or
        :data:`SILENT`.
    labels : sequence of str
        The model's genres.

    Returns
    -------
    dict
        ``tracks`` (:func:`classification_metrics`; an answer that is not a genre counts as
        wrong and, when given, is one more column of the confusion matrix), ``track_accuracy``,
        ``track_macro_f1``, ``n_tracks``, ``not_music_tracks``, ``silent_tracks``.
    """
    names = list(labels) + [other for other in (NOT_MUSIC, SILENT) if other in answers]
    code = {name: i for i, name in enumerate(names)}
    tracks = classification_metrics(np.array([code[t] for t in true_labels], np.int64),
                                    np.array([code[a] for a in answers], np.int64), names)
    return {"tracks": tracks, "track_accuracy": tracks["accuracy"], "track_macro_f1": tracks["macro_f1"],
            "n_tracks": len(answers), "not_music_tracks": sum(a == NOT_MUSIC for a in answers),
            "silent_tracks": sum(a == SILENT for a in answers)}


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax, computed stably in float64.

    Parameters
    ----------
    logits : np.ndarray
        Shape ``(n, n_classes)``.

    Returns
    -------
    np.ndarray
        float64, shape ``(n, n_classes)``; each row sums to 1.
    """
    shifted = np.asarray(logits, dtype=np.float64) - np.max(logits, axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def expected_calibration_error(probabilities: np.ndarray, y: np.ndarray, bins: int = 15) -> float:
    """Expected calibration error (Guo et al., 2017) with ``bins`` equal-width confidence bins.

    Parameters
    ----------
    probabilities : np.ndarray, shape (n, n_classes)
        Predicted class probabilities (rows sum to 1).
    y : np.ndarray, shape (n,)
        True class indices.
    bins : int
        Number of confidence bins over (0, 1].

    Returns
    -------
    float
        Sum over bins of (share of rows in the bin) x |accuracy - mean confidence|, in [0, 1].
    """
    confidence = probabilities.max(1)
    correct = probabilities.argmax(1) == y
    edges = np.linspace(0, 1, bins + 1)
    total = 0.0
    for low, high in zip(edges[:-1], edges[1:]):
        inside = (confidence > low) & (confidence <= high)
        if inside.any():
            total += inside.mean() * abs(correct[inside].mean() - confidence[inside].mean())
    return float(total)
