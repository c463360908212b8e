"""Experiment results: per-run fold summaries, the results table (CSV and Markdown), per-run
reports and the record of the machine and command that produced them.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import platform
import time
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from genrekit.utils import atomic_write_text, finite_json

if TYPE_CHECKING:
    from genrekit.experiments.experiment import Experiment, Run

#: Metrics averaged over folds (track level is what a user gets; see genrekit.evaluation.evaluate).
METRICS = ("track_accuracy", "track_macro_f1", "segment_accuracy", "segment_macro_f1")


#: Columns of ``results.csv``.
COLUMNS = (
    "experiment", "run", "variant", "input", "model", "protocol", "folds",
    *[f"{metric}_{stat}" for metric in METRICS for stat in ("mean", "std")],
    "test_tracks", "reachable_track_accuracy", "learnable_track_accuracy", "train_seconds_per_fold", "features_seconds", "wall_seconds",
    "cpu_seconds", "parameters", "parameter_kind", "labels_missing_from_training",
)


def summarize_folds(run: Run, records: Sequence[dict]) -> dict:
    """A table row from fold records: mean and sample standard deviation of each metric.

    Parameters
    ----------
    run : Run
        The run the folds belong to.
    records : sequence of dict
        One :func:`~genrekit.experiments.experiment.train_fold` record per fold, with its ``fold``.

    Returns
    -------
    dict
        The keys of :data:`COLUMNS` (``<metric>_mean``, ``<metric>_std``: NaN for one fold) and
        ``per_fold``.
    """
    row = {
        "experiment": run.experiment.name, "run": run.id, "variant": run.variant.name,
        "input": run.variant.input, "model": run.variant.model, "protocol": run.protocol,
        "folds": len(records), "n_labels": len(records[0]["labels"]),
    }
    for metric in METRICS:
        values = np.array([r["metrics"][metric] for r in records], dtype=np.float64)
        row[f"{metric}_mean"] = float(np.nanmean(values))
        row[f"{metric}_std"] = float(np.std(values, ddof=1)) if len(values) > 1 else math.nan
    missing = sorted({label for r in records for label in r["labels_not_in_train"]})
    test_tracks = int(sum(r["metrics"]["n_tracks"] for r in records))
    learnable = test_tracks - sum(_untrainable(r) for r in records)
    right = sum(int(np.trace(np.asarray(r["confusion"]))) for r in records)
    row.update(
        test_tracks=test_tracks,
        reachable_track_accuracy=learnable / max(test_tracks, 1),
        learnable_track_accuracy=right / learnable if learnable else math.nan,
        train_seconds_per_fold=float(np.mean([r["timings"]["training"] for r in records])),
        features_seconds=float(sum(r["timings"]["features"] for r in records)),
        wall_seconds=float(sum(r["wall_seconds"] for r in records)),
        cpu_seconds=float(sum(r["cpu_seconds"] for r in records)),
        parameters=int(round(np.mean([r["parameters"] for r in records]))),
        parameter_kind=records[0]["parameter_kind"],
        labels_missing_from_training=" ".join(missing),
        per_fold=[{"fold": r["fold"], **r["metrics"], "labels_not_in_train": r["labels_not_in_train"]}
                  for r in records],
    )
    return row


def _untrainable(record: dict) -> int:
    """Test tracks of a fold whose genre had no training track (they cannot be classified right)."""
    rows = np.asarray(record["confusion"])
    return int(sum(rows[record["labels"].index(label)].sum() for label in record["labels_not_in_train"]))


def _write_run_report(run: Run, records: Sequence[dict], path: Path) -> None:
    from genrekit.evaluation.reports import write_report
    from genrekit.experiments.crossval import CrossValidation

    labels = records[0]["labels"]
    confusion = np.sum([np.array(r["confusion"]) for r in records], axis=0)
    summary = {metric: {"mean": float(np.mean([r["metrics"][metric] for r in records])),
                        "std": float(np.std([r["metrics"][metric] for r in records], ddof=1))
                        if len(records) > 1 else math.nan}
               for metric in METRICS}
    notes = [_protocol_note(run)]
    for r in records:
        if r["labels_not_in_train"]:
            notes.append(f"Fold {r['fold']}: no training tracks of {', '.join(r['labels_not_in_train'])}; "
                         "its test tracks of these genres cannot be right.")
    result = CrossValidation(
        model_name=f"{run.experiment.name} {run.id}", dataset=run.experiment.dataset, folds=len(records),
        labels=labels, fold_metrics=[{**r["metrics"]} for r in records], summary=summary,
        confusion=confusion.tolist(), notes=notes, histories=[r["history"] for r in records],
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    write_report(result, path)


def _protocol_note(run: Run) -> str:
    protocol = run.experiment.protocol
    if run.grouping == "track":
        return (f"{run.folds}-fold cross-validation, genre-stratified, grouped by track: the segments of a "
                "track are never on both sides, but an artist's other tracks may be.")
    if run.grouping == "artist":
        return (f"{run.folds}-fold cross-validation grouped by artist: no artist has tracks on both sides "
                "(a track of unknown artist is a group of its own; stratified by genre where every genre "
                "has enough artists).")
    return f"Fixed {protocol['method']} split; one training run, so no standard deviation."


def _mean_std(row: dict, metric: str) -> str:
    mean, std = row[f"{metric}_mean"], row[f"{metric}_std"]
    return f"{mean:.3f}" + ("" if math.isnan(std) else f" ± {std:.3f}")


def _load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def _environment(seconds: float, load_before, command: str | None) -> dict:
    import torch

    return {
        "command": command,
        "wall_seconds": round(seconds, 1),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average_before": load_before,
        "load_average_after": _load_average(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
    }


def write_results(rows: Sequence[dict], out: str | Path, experiments: Sequence[Experiment] = (),
                  environment: dict | None = None) -> list[Path]:
    """Write ``results.md``, ``results.csv``, ``results.json`` and ``results.png`` in ``out``.

    Parameters
    ----------
    rows : sequence of dict
        :func:`summarize_folds` rows.
    out : str or Path
        Output folder (created if missing); each file is written atomically.
    experiments : sequence of Experiment
        Described at the top of the page and recorded in the JSON.
    environment : dict, optional
        How the table was made (command, timings, machine).

    Returns
    -------
    list of Path
        The four files.
    """
    from genrekit.evaluation.plots import plot_experiment_results

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / name for name in ("results.md", "results.csv", "results.json", "results.png")]
    chance = _chance(rows)
    atomic_write_text(paths[0], results_markdown(rows, experiments, environment, figure=paths[3].name))
    atomic_write_text(paths[1], results_csv(rows))
    record = {"environment": environment or {}, "experiments": [_experiment_record(e) for e in experiments],
              "rows": rows}
    atomic_write_text(paths[2], json.dumps(finite_json(record), indent=1, allow_nan=False) + "\n")
    plot_experiment_results(rows, paths[3], chance=chance)
    return paths


def results_csv(rows: Sequence[dict]) -> str:
    """The table as CSV (:data:`COLUMNS`), numbers rounded to 4 decimals, NaN as empty.

    Parameters
    ----------
    rows : sequence of dict
        :func:`summarize_folds` rows.

    Returns
    -------
    str
    """
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if isinstance(v, float) and math.isnan(v) else round(v, 4) if isinstance(v, float)
                             else v) for k, v in row.items()})
    return buffer.getvalue()


def results_markdown(rows: Sequence[dict], experiments: Sequence[Experiment] = (),
                     environment: dict | None = None, figure: str | None = None) -> str:
    """The table as Markdown, one section per protocol, with how it was made.

    Parameters
    ----------
    rows : sequence of dict
        :func:`summarize_folds` rows.
    experiments : sequence of Experiment
        Described at the top.
    environment : dict, optional
        Adds the "How this table was made" section.
    figure : str, optional
        Link to the results figure, relative to the page.

    Returns
    -------
    str
    """
    lines = ["# Results", ""]
    for experiment in experiments:
        lines += [f"Experiment **{experiment.name}** (`{experiment.source}`) on `{experiment.dataset}`."
                  + (f" {experiment.description}" if experiment.description else ""), ""]
    chance = _chance(rows)
    for protocol in dict.fromkeys(row["protocol"] for row in rows):
        chosen = [row for row in rows if row["protocol"] == protocol]
        folds = chosen[0]["folds"]
        title = f"{folds}-fold cross-validation, {protocol}" if folds > 1 else f"{protocol} split"
        lines += [f"## {title}", "", *_table(chosen), ""]
        missing = sorted({label for row in chosen for label in row["labels_missing_from_training"].split()})
        if missing:
            reachable = min(row["reachable_track_accuracy"] for row in chosen)
            lines += [f"Some folds had no training track of {', '.join(missing)}: their test tracks cannot be "
                      f"classified correctly, so no model can exceed {reachable:.1%} track accuracy here. *On "
                      "learnable genres*: the share of the other test tracks (pooled over folds) classified "
                      "right.", ""]
    lines += [
        "Accuracy and macro-F1 are means ± sample standard deviation over the held-out folds. *Track*: the "
        "mean of a track's segment probabilities decides (what `genrekit predict` does); *segment*: each "
        "segment on its own." + (f" Chance is {chance:.0%}." if chance else ""),
        "Train s/fold: seconds of training per fold (features come from the cache); *parameters*: trainable "
        "parameters of the network (frozen pretrained front ends such as musicnn not counted), or, marked "
        "\\*, the values in a scikit-learn baseline's fitted arrays.",
        "",
    ]
    if figure:
        lines += [f"![track accuracy per run]({figure})", ""]
    if environment:
        load = environment.get("load_average_before"), environment.get("load_average_after")
        lines += [
            "## How this table was made", "",
            *([f"```sh\n{environment['command']}\n```", ""] if environment.get("command") else []),
            f"- {environment['wall_seconds'] / 60:.1f} min wall clock, {environment.get('date', '')}, "
            f"{environment.get('folds_trained', '?')} folds trained"
            + (f" and {environment['folds_reused']} reused from an earlier run"
               if environment.get("folds_reused") else "")
            + f"; {sum(row['cpu_seconds'] for row in rows) / 60:.1f} min CPU time in all training runs",
            f"- features: {environment.get('features_seconds', 0):.0f} s to compute (or read from the cache) "
            "before training",
            f"- {environment['cpu_count']} CPUs, {environment.get('jobs', 1)} worker process(es) with "
            f"{environment['torch_threads']} torch thread(s) each; load average "
            f"{load[0]} before, {load[1]} after (other processes share the machine: timings are indicative)",
            f"- Python {environment['python']}, torch {environment['torch']}, {environment['platform']}",
        ]
    return "\n".join(lines) + "\n"


def _table(rows: Sequence[dict]) -> list[str]:
    learnable = any(row["reachable_track_accuracy"] < 1.0 for row in rows)
    extra = " on learnable genres |" if learnable else ""
    lines = ["| input | model | track accuracy | segment accuracy | track macro-F1 |" + extra
             + " train s/fold | parameters |", "|---|---|---|---|---|" + ("---|" if learnable else "") + "---:|---:|"]
    best = max(row["track_accuracy_mean"] for row in rows)
    for row in rows:
        accuracy = _pct(row, "track_accuracy")
        if row["track_accuracy_mean"] == best:
            accuracy = f"**{accuracy}**"
        size = f"{row['parameters']:,}" + ("\\*" if row["parameter_kind"] != "trainable" else "")
        cells = [row["input"], row["model"], accuracy, _pct(row, "segment_accuracy"), _pct(row, "track_macro_f1")]
        if learnable:
            cells.append(f"{100 * row['learnable_track_accuracy']:.1f} %")
        cells += [f"{row['train_seconds_per_fold']:.1f}", size]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _pct(row: dict, metric: str) -> str:
    mean, std = row[f"{metric}_mean"], row[f"{metric}_std"]
    return f"{100 * mean:.1f}" + ("" if math.isnan(std) else f" ± {100 * std:.1f}") + " %"


def _chance(rows: Sequence[dict]) -> float | None:
    """Accuracy of uniform guessing, ``1 / n_labels``, when every run has the same labels."""
    counts = {row.get("n_labels") for row in rows} - {None}
    return 1.0 / counts.pop() if len(counts) == 1 else None


def _experiment_record(experiment: Experiment) -> dict:
    return {"name": experiment.name, "source": experiment.source, "dataset": experiment.dataset,
            "dataset_kind": experiment.dataset_kind, "protocol": experiment.protocol, "base": experiment.base,
            "variants": [vars(v) for v in experiment.variants]}
