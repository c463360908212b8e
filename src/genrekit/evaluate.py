"""Evaluate genre models: metrics, segment-to-track aggregation, leakage guard, reports.

Accuracy is reported at two levels: per **segment** (each 3-s window on its own) and per
**track** (the segments' calibrated probabilities averaged, weighted by their share of real
audio, as ``genrekit predict`` does). Silent segments are left out of both, like ``predict``
leaves them out of its decision. Track level is the number to quote: it is what a user gets.

:func:`evaluate_model` runs a model file on a dataset split; :func:`write_report` turns the
result into a Markdown report with a confusion matrix (PNG + JSON) and training curves (PNG).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from .errors import DatasetError, UsageError

__all__ = [
    "confusion_matrix",
    "classification_metrics",
    "track_probabilities",
    "summarize_predictions",
    "Evaluation",
    "evaluate_model",
    "check_against_training",
    "write_report",
    "cross_validate",
]

SPLITS = ("test", "valid", "all", "kfold")


# --- metrics ---------------------------------------------------------------------------------


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Counts ``(n_classes, n_classes)`` int: row = true class, column = predicted class."""
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
    probabilities: np.ndarray, track_index: np.ndarray, n_tracks: int, weights: np.ndarray | None = None
) -> np.ndarray:
    """Weighted mean of segment probabilities per track.

    Parameters
    ----------
    probabilities : np.ndarray
        ``(n_segments, n_classes)``.
    track_index : np.ndarray, int
        ``(n_segments,)`` track of each segment, in ``[0, n_tracks)``.
    n_tracks : int
    weights : np.ndarray, optional
        ``(n_segments,)`` non-negative weights (share of real audio); default 1.

    Returns
    -------
    np.ndarray
        ``(n_tracks, n_classes)`` float64; rows of tracks without segments are NaN.
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    weights = np.ones(len(probabilities)) if weights is None else np.asarray(weights, dtype=np.float64)
    sums = np.zeros((n_tracks, probabilities.shape[1]))
    np.add.at(sums, track_index, probabilities * weights[:, None])
    totals = np.bincount(track_index, weights=weights, minlength=n_tracks)
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums / totals[:, None]


def voiced_mask(silent: np.ndarray, track_index: np.ndarray) -> np.ndarray:
    """Segments to use: not silent, except that an all-silent track keeps all its segments."""
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
    per_track = track_probabilities(probabilities, track_index, len(track_labels), weights)
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


# --- evaluating a model file on a dataset ----------------------------------------------------


@dataclass
class Evaluation:
    """A model's results on one split of a dataset (what the report shows).

    ``metrics`` is :func:`summarize_predictions`'s dict; ``predictions`` one row per track
    (``track_id``, ``label``, ``predicted``, ``confidence``); ``notes`` sentences for the
    report (how the split was chosen, leakage and group checks, skipped tracks).
    """

    model_name: str
    model_path: str | None
    dataset: str
    split: str
    split_source: str
    labels: list[str]
    metrics: dict
    predictions: list[dict]
    notes: list[str] = field(default_factory=list)
    training_counts: dict = field(default_factory=dict)
    history: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        from dataclasses import asdict

        return asdict(self)


def evaluate_model(
    model,
    dataset,
    *,
    split: str = "test",
    dataset_kind: str = "auto",
    cache_dir: str | None = None,
    batch_size: int = 64,
    device: str = "cpu",
) -> Evaluation:
    """Run a model on a split of a dataset and score it at segment and track level.

    Parameters
    ----------
    model : GenreModel or path
        A loaded model or a model file (``NAME``, ``NAME.json``, ``NAME.safetensors``).
    dataset : Dataset or path
        Opened with :func:`genrekit.datasets.open_dataset` when a path.
    split : {"test", "valid", "all"}
        Which tracks: the model file's recorded test / validation tracks when they are in this
        dataset, else the dataset's own split (official or GTZAN artist-filtered, see
        :func:`genrekit.splits.split_dataset`); ``"all"`` takes every track.
    cache_dir : str or None
        Feature cache (``None``: the default one, ``""``: none).

    Raises
    ------
    DatasetError
        When evaluated tracks (or their artists) were used to train the model, or the split
        selects no track the model can be scored on.
    """
    from .classifier import GenreModel, load_model
    from .datasets import Dataset, open_dataset
    from .train import extract_features, open_cache, predict_logits

    if split not in ("test", "valid", "all"):
        raise UsageError(f"split must be test, valid or all here, not {split!r} (kfold: see cross_validate)")
    model_path = None
    if not isinstance(model, GenreModel):
        model_path, model = str(model), load_model(model)
    if not isinstance(dataset, Dataset):
        dataset = open_dataset(dataset, dataset_kind)
    tracks, source = select_tracks(dataset, model.spec.get("split") or {}, split)
    notes = [f"Tracks: {source}."]
    notes += check_against_training(tracks, model.spec, split)
    known = set(model.labels)
    unknown = [t for t in tracks if t.label not in known]
    if unknown:
        notes.append(f"{len(unknown)} tracks with labels the model does not know were left out "
                     f"({', '.join(sorted({t.label for t in unknown}))}).")
        tracks = [t for t in tracks if t.label in known]
    if not tracks:
        raise DatasetError(f"{dataset.root}: the {split} split holds no track with a label the model knows")

    branches = list(model.feature.branches) if isinstance(model.spec["feature"], list) else [model.feature]
    specs = model.spec["feature"] if isinstance(model.spec["feature"], list) else [model.spec["feature"]]
    features = extract_features(
        tracks, specs, sample_rate=model.sample_rate, segment=model.spec["segment"],
        cache=open_cache(cache_dir), modules=branches, device=device, description=f"{split} features",
    )
    if features.failed:
        notes.append(f"{len(features.failed)} tracks could not be decoded and were left out "
                     f"(first: {features.failed[0][1]}).")
    features = features.select(voiced_mask(features.silent, features.track_index))
    model.network.to(device)
    logits = predict_logits(model.network, features.inputs, batch_size, device)
    probabilities = softmax(logits.numpy() / model.temperature)
    code = {label: i for i, label in enumerate(model.labels)}
    track_labels = np.array([code[t.label] for t in features.tracks], dtype=np.int64)
    metrics = summarize_predictions(probabilities, features.track_index, track_labels, model.labels,
                                    features.weights)
    per_track = track_probabilities(probabilities, features.track_index, len(features.tracks), features.weights)
    predictions = [
        {"track_id": t.track_id, "label": t.label, "predicted": model.labels[int(p.argmax())],
         "confidence": round(float(p.max()), 4)}
        for t, p in zip(features.tracks, per_track)
    ]
    record = model.spec.get("split") or {}
    return Evaluation(
        model_name=model.name,
        model_path=model_path,
        dataset=str(dataset.root),
        split=split,
        split_source=source,
        labels=model.labels,
        metrics=metrics,
        predictions=predictions,
        notes=notes,
        training_counts=dict(record.get("counts") or {}),
        history=list((model.spec.get("training") or {}).get("history") or []),
    )


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of a float array, computed stably in float64."""
    shifted = np.asarray(logits, dtype=np.float64) - np.max(logits, axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def select_tracks(dataset, record: dict, split: str) -> tuple[list, str]:
    """The tracks of ``split`` and a phrase saying where that choice comes from.

    The model file's recorded tracks of that side are found by track id, or by file (name and
    size, :func:`genrekit.train.track_key`) when the dataset was opened another way than for
    training (a manifest instead of a GTZAN folder, say).
    """
    from .splits import split_dataset
    from .train import track_key

    if split == "all":
        return list(dataset.tracks), f"all {len(dataset.tracks)} tracks of the dataset"
    recorded_ids = set(record.get(split) or [])
    recorded_keys = set((record.get("keys") or {}).get(split) or [])
    if recorded_ids or recorded_keys:
        chosen = [t for t in dataset.tracks if t.track_id in recorded_ids]
        if not chosen and recorded_keys:
            chosen = [t for t in dataset.tracks if track_key(t) in recorded_keys]
        if chosen:
            total = len(recorded_ids or recorded_keys)
            return chosen, (f"the model's recorded {split} tracks ({len(chosen)} of {total} found in this "
                            f"dataset; {record.get('method', '?')} split, seed {record.get('seed', '?')})")
    parts = split_dataset(dataset, "auto")
    side = parts.valid if split == "valid" else parts.test
    method = ("the dataset's official split" if all(t.split for t in dataset.tracks)
              else "GTZAN's artist-filtered split" if dataset.kind == "gtzan"
              else "a seeded random split of the dataset (seed 0)")
    return list(side), f"{split} side of {method}"


def check_against_training(tracks: Sequence, spec: dict, split: str = "test") -> list[str]:
    """Leakage guard: raise :class:`DatasetError` if an evaluated track, or its artist, was trained on.

    Compares ``tracks`` with the training tracks the model file records: by track id, and by file
    (name without extension, and size in bytes) so that the same files opened through another
    dataset layout are recognised too. Tracks that only share a file name with training tracks
    (perhaps the same recording in another encoding) are reported in a note, not refused.
    Returns notes for the report: what could be checked, and whether groups are known.
    """
    from .train import track_key

    record = spec.get("split") or {}
    trained_ids = set(record.get("train") or [])
    trained_keys = set((record.get("keys") or {}).get("train") or [])
    notes = []
    if not trained_ids and not trained_keys:
        notes.append("The model file records no training tracks, so overlap with training could not be checked.")
    else:
        keys = {t.track_id: track_key(t) for t in tracks} if trained_keys else {}
        overlap = sorted(t.track_id for t in tracks if t.track_id in trained_ids or keys.get(t.track_id) in trained_keys)
        if overlap:
            raise DatasetError(
                f"{len(overlap)} of the {len(tracks)} evaluated tracks were used to train "
                f"{spec.get('name', 'the model')} (e.g. {overlap[0]}): the split leaks; evaluate on held-out tracks"
            )
        notes.append(f"None of the evaluated tracks is among the model's {len(trained_ids or trained_keys)} "
                     "training tracks" + (" (compared by id and by file name and size)." if trained_keys else
                                          " (compared by track id only: this model file records no file keys)."))
        trained_names = {key.rsplit(":", 1)[0] for key in trained_keys}
        same_name = [t.track_id for t in tracks if keys.get(t.track_id, "").rsplit(":", 1)[0] in trained_names]
        if same_name:
            notes.append(f"{len(same_name)} evaluated tracks share a file name with training tracks (e.g. "
                         f"{same_name[0]}) but not the size: if they are the same recordings, the split leaks.")
    groups = {t.group for t in tracks}
    if None in groups:
        notes.append(
            "This split has no group (artist) information for "
            f"{sum(t.group is None for t in tracks)} of {len(tracks)} tracks: songs of one artist may sit on "
            "both sides, which flatters the accuracy."
        )
    trained_groups = set(record.get("train_groups") or [])
    shared = sorted((groups - {None}) & trained_groups)
    if shared:
        raise DatasetError(
            f"artist {shared[0]!r} (and {len(shared) - 1} more) has tracks in training and in the "
            f"evaluated {split} split: the split leaks"
        )
    if trained_groups and groups != {None}:
        notes.append("No artist (group) of the evaluated tracks appears in training.")
    if split == "valid" and record.get("valid"):
        notes.append("The validation tracks chose the best epoch and the temperature: expect optimistic numbers.")
    return notes


# --- cross-validation ------------------------------------------------------------------------


@dataclass
class CrossValidation:
    """k-fold results: one :class:`Evaluation`-like metrics dict per fold, and their mean and std."""

    model_name: str
    dataset: str
    folds: int
    labels: list[str]
    fold_metrics: list[dict]
    summary: dict
    confusion: list[list[int]]
    notes: list[str] = field(default_factory=list)
    histories: list[list[dict]] = field(default_factory=list)


CV_METRICS = ("track_accuracy", "track_macro_f1", "segment_accuracy", "segment_macro_f1")


def cross_validate(config, folds: int = 5, *, out_dir: str | Path | None = None) -> CrossValidation:
    """Train ``config``'s recipe on ``folds`` track-level folds and test each on its held-out fold.

    Parameters
    ----------
    config : TrainConfig
        The recipe (``split`` is replaced by ``{"method": "kfold", "folds": folds, "fold": i}``,
        keeping its ``valid_size``).
    folds : int
    out_dir : path, optional
        Where the fold models go (``<name>-fold<i>``); default beside ``config.out``.

    Returns
    -------
    CrossValidation
        Mean and (sample) standard deviation over folds of track / segment accuracy and
        macro-F1, and the confusion matrix summed over folds.
    """
    import dataclasses

    from .train import train_model

    if folds < 2:
        raise UsageError(f"cross-validation needs at least 2 folds, not {folds}")
    out_dir = Path(out_dir) if out_dir else Path(config.out).parent
    fold_metrics, histories, confusion = [], [], None
    for fold in range(folds):
        fold_config = dataclasses.replace(
            config,
            split={"valid_size": config.split.get("valid_size", 0.1), "method": "kfold", "folds": folds, "fold": fold},
            out=str(out_dir / f"{config.model_name}-fold{fold}"),
            name=f"{config.model_name}-fold{fold}",
        )
        result = train_model(fold_config)
        test = result.metrics["test"]
        fold_metrics.append({key: test[key] for key in (*CV_METRICS, "n_tracks", "n_segments")})
        histories.append(result.history)
        matrix = np.array(test["tracks"]["confusion"])
        confusion = matrix if confusion is None else confusion + matrix
        labels = result.spec["labels"]
    summary = {}
    for key in CV_METRICS:
        values = np.array([m[key] for m in fold_metrics], dtype=np.float64)
        summary[key] = {"mean": float(values.mean()), "std": float(values.std(ddof=1)) if folds > 1 else 0.0}
    return CrossValidation(
        model_name=config.model_name, dataset=str(config.dataset), folds=folds, labels=labels,
        fold_metrics=fold_metrics, summary=summary, confusion=confusion.tolist(),
        notes=[f"{folds}-fold cross-validation at track level (stratified, artist-disjoint when the "
               "dataset names artists); each fold's model is tested on its held-out fold."],
        histories=histories,
    )


# --- reports ---------------------------------------------------------------------------------


def write_report(result: "Evaluation | CrossValidation", path: str | Path) -> list[Path]:
    """Write a Markdown report and its figures; returns the files written.

    Beside ``REPORT.md`` go ``REPORT-confusion.png`` and ``REPORT-confusion.json`` (track-level
    counts, rows true, columns predicted) and, when the model records its training history,
    ``REPORT-curves.png``.
    """
    from .plots import plot_confusion_matrix, plot_training_curves
    from .utils import atomic_write_text

    path = Path(path)
    stem = path.with_suffix("")
    confusion_png = stem.with_name(stem.name + "-confusion.png")
    confusion_json = stem.with_name(stem.name + "-confusion.json")
    curves_png = stem.with_name(stem.name + "-curves.png")
    is_cv = isinstance(result, CrossValidation)
    matrix = result.confusion if is_cv else result.metrics["tracks"]["confusion"]
    written = [path, confusion_png, confusion_json]
    plot_confusion_matrix(np.array(matrix), result.labels, confusion_png)
    atomic_write_text(confusion_json, json.dumps(
        {"labels": result.labels, "rows": "true", "columns": "predicted", "level": "track", "counts": matrix},
        indent=1) + "\n")
    histories = result.histories if is_cv else ([result.history] if result.history else [])
    if any(histories):
        plot_training_curves(histories, curves_png)
        written.append(curves_png)
    markdown = _cv_markdown(result) if is_cv else _evaluation_markdown(result)
    figures = f"\n## Confusion matrix (tracks)\n\n![confusion matrix]({confusion_png.name})\n\nCounts: [{confusion_json.name}]({confusion_json.name})\n"
    if curves_png in written:
        figures += f"\n## Training curves\n\n![training curves]({curves_png.name})\n"
    atomic_write_text(path, markdown + figures)
    return written


def _pct(value: float) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.1f} %"


def _evaluation_markdown(result: Evaluation) -> str:
    m = result.metrics
    counts = result.training_counts
    trained_on = (", ".join(f"{side} {counts[side]}" for side in ("train", "valid", "test") if side in counts)
                  or "not recorded")
    lines = [
        f"# Evaluation of {result.model_name}",
        "",
        f"- Model: `{result.model_path or result.model_name}`",
        f"- Dataset: `{result.dataset}`",
        f"- Split: **{result.split}**, {m['n_tracks']} tracks, {m['n_segments']} segments",
        f"- Model's own split (tracks): {trained_on}",
        "",
        "| level | accuracy | macro-F1 | balanced accuracy |",
        "|---|---|---|---|",
        f"| track (mean of segment probabilities) | {_pct(m['track_accuracy'])} | {_pct(m['track_macro_f1'])} "
        f"| {_pct(m['tracks']['balanced_accuracy'])} |",
        f"| segment | {_pct(m['segment_accuracy'])} | {_pct(m['segment_macro_f1'])} "
        f"| {_pct(m['segments']['balanced_accuracy'])} |",
        "",
        f"Mean negative log-likelihood per segment (calibrated): {m['nll']:.3f}",
        "",
        "## Notes",
        "",
        *[f"- {note}" for note in result.notes],
        "",
        "## Per genre (tracks)",
        "",
        _per_class_table(m["tracks"]["per_class"]),
    ]
    wrong = [p for p in result.predictions if p["predicted"] != p["label"]]
    if wrong:
        lines += ["", f"## Misclassified tracks ({len(wrong)})", "", "| track | genre | predicted | confidence |",
                  "|---|---|---|---|"]
        lines += [f"| {p['track_id']} | {p['label']} | {p['predicted']} | {p['confidence']:.2f} |" for p in wrong[:50]]
        if len(wrong) > 50:
            lines.append(f"\n... and {len(wrong) - 50} more.")
    return "\n".join(lines) + "\n"


def _cv_markdown(result: CrossValidation) -> str:
    s = result.summary
    lines = [
        f"# {result.folds}-fold cross-validation of {result.model_name}",
        "",
        f"- Dataset: `{result.dataset}`",
        f"- Tracks per test fold: {', '.join(str(m['n_tracks']) for m in result.fold_metrics)}",
        "",
        "| metric | mean | std |",
        "|---|---|---|",
        *[f"| {key.replace('_', ' ')} | {_pct(s[key]['mean'])} | {_pct(s[key]['std'])} |" for key in CV_METRICS],
        "",
        "| fold | track accuracy | track macro-F1 | segment accuracy | tracks |",
        "|---|---|---|---|---|",
        *[f"| {i} | {_pct(m['track_accuracy'])} | {_pct(m['track_macro_f1'])} | {_pct(m['segment_accuracy'])} "
          f"| {m['n_tracks']} |" for i, m in enumerate(result.fold_metrics)],
        "",
        "## Notes",
        "",
        *[f"- {note}" for note in result.notes],
    ]
    return "\n".join(lines) + "\n"


def _per_class_table(per_class: dict) -> str:
    rows = ["| genre | precision | recall | F1 | tracks |", "|---|---|---|---|---|"]
    for label, values in per_class.items():
        rows.append(f"| {label} | {values['precision']:.2f} | {values['recall']:.2f} | {values['f1']:.2f} "
                    f"| {values['support']} |")
    return "\n".join(rows)
