"""Evaluation reports: Markdown, a confusion-matrix figure and its counts, training curves."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Protocol

import numpy as np


class Reportable(Protocol):
    """What :func:`write_report` needs of a result (an :class:`Evaluation` or a cross-validation).

    Attributes
    ----------
    labels : list of str
        The class names, in the order of the confusion matrix.
    """

    labels: list[str]

    @property
    def track_confusion(self) -> list[list[int]]:
        """Track-level confusion counts, rows true, columns predicted."""

    @property
    def histories(self) -> list[list[dict]]:
        """Training histories (one list of per-epoch rows per run; may be empty)."""

    def markdown(self) -> str:
        """The report's Markdown body.

        Returns
        -------
        str
        """


def write_report(result: Reportable, path: str | Path) -> list[Path]:
    """Write a Markdown report and its figures.

    Beside ``REPORT.md`` go ``REPORT-confusion.png`` and ``REPORT-confusion.json`` (track-level
    counts, rows true, columns predicted) and, when the model records its training history,
    ``REPORT-curves.png``. Every file is written atomically.

    Parameters
    ----------
    result : Reportable
        An :class:`~genrekit.evaluation.evaluate.Evaluation` or a cross-validation result.
    path : str or Path
        The Markdown file ``REPORT.md``.

    Returns
    -------
    list of Path
        The files written, the Markdown first.
    """
    from genrekit.evaluation.plots import plot_confusion_matrix, plot_training_curves
    from genrekit.utils import atomic_write_text

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)  # a report is a result tree: its folder is made
    stem = path.with_suffix("")
    confusion_png = stem.with_name(stem.name + "-confusion.png")
    confusion_json = stem.with_name(stem.name + "-confusion.json")
    curves_png = stem.with_name(stem.name + "-curves.png")
    matrix = result.track_confusion
    labels = getattr(result, "track_labels", result.labels)  # with "not music" when predict said so
    written = [path, confusion_png, confusion_json]
    plot_confusion_matrix(np.array(matrix), labels, confusion_png)
    atomic_write_text(confusion_json, json.dumps(
        {"labels": labels, "rows": "true", "columns": "predicted", "level": "track", "counts": matrix},
        indent=1, allow_nan=False) + "\n")
    histories = result.histories
    if any(histories):
        plot_training_curves(histories, curves_png)
        written.append(curves_png)
    markdown = result.markdown()
    figures = f"\n## Confusion matrix (tracks)\n\n![confusion matrix]({confusion_png.name})\n\nCounts: [{confusion_json.name}]({confusion_json.name})\n"
    if curves_png in written:
        figures += f"\n## Training curves\n\n![training curves]({curves_png.name})\n"
    atomic_write_text(path, markdown + figures)
    return written


def pct(value: float) -> str:
    """A share as a percentage with one decimal, ``"n/a"`` for None or NaN.

    Parameters
    ----------
    value : float or None
        A share in [0, 1].

    Returns
    -------
    str
        ``"78.0 %"``.
    """
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.1f} %"


def evaluation_markdown(result) -> str:
    """The Markdown body of an :class:`~genrekit.evaluation.evaluate.Evaluation`'s report.

    Parameters
    ----------
    result : Evaluation
        Metrics, notes and per-track predictions.

    Returns
    -------
    str
        Summary table, notes, per-genre table and misclassified tracks (at most 50).
    """
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
        *([f"- Answered as `genrekit predict` answers: {m['not_music_tracks']} tracks not music, "
           f"{m['silent_tracks']} silent (no genre: counted as wrong)"]
          if m.get("not_music_tracks") or m.get("silent_tracks") else []),
        "",
        "| level | accuracy | macro-F1 | balanced accuracy |",
        "|---|---|---|---|",
        f"| track (mean of segment probabilities) | {pct(m['track_accuracy'])} | {pct(m['track_macro_f1'])} "
        f"| {pct(m['tracks']['balanced_accuracy'])} |",
        f"| segment | {pct(m['segment_accuracy'])} | {pct(m['segment_macro_f1'])} "
        f"| {pct(m['segments']['balanced_accuracy'])} |",
        "",
        f"Mean negative log-likelihood per segment (calibrated): {m['nll']:.3f}",
        "",
        "## Notes",
        "",
        *[f"- {note}" for note in result.notes],
        "",
        "## Per genre (tracks)",
        "",
        per_class_table(m["tracks"]["per_class"]),
    ]
    wrong = [p for p in result.predictions if p["predicted"] != p["label"]]
    if wrong:
        lines += ["", f"## Misclassified tracks ({len(wrong)})", "", "| track | genre | predicted | confidence |",
                  "|---|---|---|---|"]
        lines += [f"| {p['track_id']} | {p['label']} | {p['predicted']} | {p['confidence']:.2f} |" for p in wrong[:50]]
        if len(wrong) > 50:
            lines.append(f"\n... and {len(wrong) - 50} more.")
    return "\n".join(lines) + "\n"


def per_class_table(per_class: dict) -> str:
    """Precision, recall, F1 and support per genre as a Markdown table.

    Parameters
    ----------
    per_class : dict
        Genre -> ``{"precision", "recall", "f1", "support"}``, as in the metrics' ``per_class``.

    Returns
    -------
    str
    """
    rows = ["| genre | precision | recall | F1 | tracks |", "|---|---|---|---|---|"]
    for label, values in per_class.items():
        rows.append(f"| {label} | {values['precision']:.2f} | {values['recall']:.2f} | {values['f1']:.2f} "
                    f"| {values['support']} |")
    return "\n".join(rows)
