"""Build the bundled default model from ``experiments/default-model.toml`` and measure it honestly.

1. Writes ``experiments/gtzan-mini-tracks.csv``: every gtzan-mini clip with its artist (group)
   and a split column: ``valid`` for an artist-disjoint, genre-stratified 20 % (early stopping
   and the softmax temperature), ``train`` for the rest, so the model learns from all clips.
2. Trains the recipe with :func:`genrekit.training.loop.train_model` into ``src/genrekit/data/models/default``.
3. Cross-validates the same recipe on gtzan-mini twice (:func:`genrekit.experiments.crossval.cross_validate`,
   fold models in a temporary folder): with track-grouped folds (segments of one clip never on
   both sides) and with artist-grouped folds (no artist on both sides). Both go into the model
   file's ``metrics`` and ``docs/model-card-*.{md,png,json}``.

Usage, from the repository root::

    .venv/bin/python scripts/build_default_model.py [--data ../shared/data/gtzan-mini] [--folds 8]
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "experiments" / "default-model.toml"
MANIFEST = ROOT / "experiments" / "gtzan-mini-tracks.csv"
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "gtzan-mini"
DOCS = ROOT / "docs"


def write_manifest(data: Path, path: Path, *, groups: bool = True, valid_size: float = 0.2, seed: int = 0) -> Path:
    """All tracks of ``data`` as ``path,label,group,split`` rows (paths relative to the manifest).

    ``groups=False`` leaves the group column empty, so every clip is its own group.
    """
    from genrekit.data.datasets import open_dataset
    from genrekit.data.splits import holdout_split

    dataset = open_dataset(data, "gtzan")
    _, valid = holdout_split(dataset.tracks, test_size=valid_size, seed=seed, groups="auto")
    valid_ids = {t.track_id for t in valid}
    rows = [
        {"path": Path(os.path.relpath(Path(t.path).resolve(), path.parent)).as_posix(), "label": t.label,
         "group": (t.group or "") if groups else "", "split": "valid" if t.track_id in valid_ids else "train"}
        for t in dataset.tracks
    ]
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["path", "label", "group", "split"])
        writer.writeheader()
        writer.writerows(rows)
    return path


def cross_validation_record(config, data: Path, folds: int, grouping: str, report: Path) -> dict:
    from genrekit.evaluation.reports import write_report
    from genrekit.experiments.crossval import cross_validate

    with tempfile.TemporaryDirectory() as folder:
        manifest = write_manifest(data, Path(folder) / "tracks.csv", groups=grouping == "artist")
        cv_config = dataclasses.replace(config, dataset=str(manifest), dataset_kind="manifest",
                                        split={"method": "kfold", "valid_size": 0.15})
        cv = cross_validate(cv_config, folds, out_dir=folder)
        write_report(cv, report)
    # the report names the temporary manifest; name the data instead
    report.write_text(report.read_text().replace(str(manifest), f"gtzan-mini (80 clips), {grouping}-grouped folds"))
    for key, value in cv.summary.items():
        print(f"{grouping}-grouped {folds}-fold {key}: {value['mean']:.3f} +- {value['std']:.3f}")
    return {
        "folds": folds,
        "grouping": f"{grouping}-grouped, genre-stratified folds; validation drawn from the training folds",
        "dataset": "gtzan-mini (80 clips, 10 genres)",
        "summary": cv.summary,
        "confusion": cv.confusion,
        "fold_tracks": [m["n_tracks"] for m in cv.fold_metrics],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="gtzan-mini folder")
    parser.add_argument("--folds", type=int, default=8, help="cross-validation folds (0: skip)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    args = parser.parse_args()

    import torch

    from genrekit.models.files import model_paths
    from genrekit.training.config import load_config
    from genrekit.training.loop import train_model
    from genrekit.utils import atomic_write_text

    torch.set_num_threads(args.threads)
    write_manifest(args.data, MANIFEST)
    config = load_config(RECIPE)
    result = train_model(config)
    json_path, weights_path = model_paths(result.model_path)
    print(f"model: {json_path} ({json_path.stat().st_size + weights_path.stat().st_size} bytes), "
          f"{result.n_parameters} parameters, best epoch {result.best_epoch}")
    if args.folds:
        spec = json.loads(json_path.read_text())
        spec["metrics"]["cross_validation"] = {
            grouping: cross_validation_record(config, args.data, args.folds, grouping,
                                              DOCS / f"model-card-cv-{grouping}.md")
            for grouping in ("track", "artist")
        }
        atomic_write_text(json_path, json.dumps(spec, indent=2) + "\n")


if __name__ == "__main__":
    main()
