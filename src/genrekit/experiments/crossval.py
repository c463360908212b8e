"""k-fold cross-validation of a training recipe: one driver for ``genrekit evaluate --split kfold``, experiments and tuning."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import numpy as np

from genrekit.errors import UsageError
from genrekit.evaluation.reports import pct

if TYPE_CHECKING:
    from genrekit.training.run import TrainResult


@dataclass
class CrossValidation:
    """k-fold results: one :class:`Evaluation`-like metrics dict per fold, and their mean and std.

    Attributes
    ----------
    model_name, dataset : str
    folds : int
    labels : list of str
    fold_metrics : list of dict
        Per fold: :data:`CV_METRICS`, ``n_tracks`` and ``n_segments`` of its test side.
    summary : dict
        Metric -> ``{"mean", "std"}`` over folds (sample standard deviation).
    confusion : list of list of int
        Track-level confusion counts summed over folds (rows true, columns predicted).
    notes : list of str
        Sentences for the report.
    histories : list of list of dict
        Each fold's training history.
    """

    model_name: str
    dataset: str
    folds: int
    labels: list[str]
    fold_metrics: list[dict]
    summary: dict
    confusion: list[list[int]]
    notes: list[str] = field(default_factory=list)
    histories: list[list[dict]] = field(default_factory=list)

    @property
    def track_confusion(self) -> list[list[int]]:
        """Track-level confusion counts summed over folds (for :func:`write_report`)."""
        return self.confusion

    def markdown(self) -> str:
        """The report's Markdown body: mean and std per metric, then one row per fold.

        Returns
        -------
        str
        """
        result = self
        s = result.summary
        lines = [
            f"# {result.folds}-fold cross-validation of {result.model_name}",
            "",
            f"- Dataset: `{result.dataset}`",
            f"- Tracks per test fold: {', '.join(str(m['n_tracks']) for m in result.fold_metrics)}",
            "",
            "| metric | mean | std |",
            "|---|---|---|",
            *[f"| {key.replace('_', ' ')} | {pct(s[key]['mean'])} | {pct(s[key]['std'])} |" for key in CV_METRICS],
            "",
            "| fold | track accuracy | track macro-F1 | segment accuracy | tracks |",
            "|---|---|---|---|---|",
            *[f"| {i} | {pct(m['track_accuracy'])} | {pct(m['track_macro_f1'])} | {pct(m['segment_accuracy'])} "
              f"| {m['n_tracks']} |" for i, m in enumerate(result.fold_metrics)],
            "",
            "## Notes",
            "",
            *[f"- {note}" for note in result.notes],
        ]
        return "\n".join(lines) + "\n"


def kfold_split(folds: int, fold: int, *, valid_size: float = 0.1, group_by: str | None = None) -> dict:
    """The ``split`` settings that make a training run fold ``fold`` of ``folds``.

    The one definition of a cross-validation fold, used by ``genrekit evaluate --split kfold``
    (:func:`cross_validate`), experiments and tuning: the test side is the fold, ``valid_size``
    of the rest is drawn for validation.

    Parameters
    ----------
    folds : int
        Number of folds.
    fold : int
        The test fold, ``0 <= fold < folds``.
    valid_size : float, default 0.1
        Share of the other folds' tracks drawn for validation.
    group_by : {"artist", "track"} or None
        What must stay on one side; default: artist when the dataset names artists.

    Returns
    -------
    dict
        ``{"method": "kfold", "folds", "fold", "valid_size"[, "group_by"]}``.

    Examples
    --------
    >>> kfold_split(5, 0, group_by="artist")
    {'method': 'kfold', 'folds': 5, 'fold': 0, 'valid_size': 0.1, 'group_by': 'artist'}
    """
    split = {"method": "kfold", "folds": int(folds), "fold": int(fold), "valid_size": float(valid_size)}
    if group_by is not None:
        split["group_by"] = group_by
    return split


CV_METRICS = ("track_accuracy", "track_macro_f1", "segment_accuracy", "segment_macro_f1")


def train_folds(config, folds: int, *, out_dir: str | Path, prefix: str | None = None, group_by: str | None = None,
                quiet: bool = False, **changes) -> Iterator[tuple[int, "TrainResult"]]:
    """Train ``config``'s recipe on each of ``folds`` folds in turn; yield ``(fold, TrainResult)``.

    The one sequential k-fold driver (``genrekit evaluate --split kfold`` and tuning's inner
    folds; experiments schedule the same fold configs over worker processes). Fold ``i``'s
    model goes to ``out_dir/<prefix>-fold<i>`` (``prefix``: the model name), its split is
    :func:`kfold_split` keeping the recipe's ``valid_size``; ``changes`` replace other settings
    (e.g. another dataset). Stop iterating to stop training (tuning prunes that way).
    ``quiet`` logs the per-epoch lines at DEBUG level only.

    Parameters
    ----------
    config : TrainConfig
        The recipe.
    folds : int
        Number of folds.
    out_dir : str or Path
        Where the fold models go.
    prefix : str, optional
        Fold model names' prefix; default the model name.
    group_by : {"artist", "track"} or None
        As :func:`kfold_split`.
    quiet : bool, default False
    **changes
        Other settings to replace.

    Yields
    ------
    fold : int
    result : TrainResult
    """
    import dataclasses

    from genrekit.training.loop import train_model

    prefix = prefix or config.model_name
    for fold in range(folds):
        name = f"{prefix}-fold{fold}"
        fold_config = dataclasses.replace(
            config, **changes, out=str(Path(out_dir) / name), name=name,
            split=kfold_split(folds, fold, valid_size=config.split.get("valid_size", 0.1), group_by=group_by),
        )
        result = train_model(fold_config, quiet=quiet)
        yield fold, result


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

    Raises
    ------
    UsageError
        Fewer than 2 folds.
    """
    if folds < 2:
        raise UsageError(f"cross-validation needs at least 2 folds, not {folds}")
    out_dir = Path(out_dir) if out_dir else Path(config.out).parent
    fold_metrics, histories, confusion = [], [], None
    for fold, result in train_folds(config, folds, out_dir=out_dir):
        test = result.metrics["test"]
        fold_metrics.append({key: test[key] for key in (*CV_METRICS, "n_tracks", "n_segments")})
        histories.append(result.history)
        matrix = np.array(test["tracks"]["confusion"])
        confusion = matrix if confusion is None else confusion + matrix
        labels = list(result.spec.labels)
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
