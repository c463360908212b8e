"""Build the bundled ``fast`` model from ``experiments/fast-model.toml`` and measure it honestly.

1. Writes ``experiments/fast-model-tracks.csv``: every gtzan-mini clip with its artist (group)
   and a split column: ``valid`` for an artist-disjoint side (20 % asked; whole artists make it
   10 clips) that picks the epoch and fits the softmax temperature, ``train`` for the rest, so
   that no clip is left unused.
2. Trains the recipe with :func:`genrekit.training.loop.train_model` into ``src/genrekit/data/models/fast``.
3. With ``--folds K`` (default 5), cross-validates the same recipe on gtzan-mini twice
   (:func:`genrekit.experiments.crossval.cross_validate`; fold models go to a temporary folder): with
   artist-disjoint folds (``metrics.cross_validation``) and with folds that ignore artists
   (``metrics.cross_validation_ungrouped``, optimistic), and records both in the model file.
   Four gtzan-mini genres are one artist each, so artist-disjoint folds cannot be learnt for
   them; the record also gives the accuracy on the other six.

Usage, from the repository root::

    .venv/bin/python scripts/build_fast_model.py [--data ../shared/data/gtzan-mini] [--folds 5]
"""

from __future__ import annotations

import argparse
import csv
import json
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "experiments" / "fast-model.toml"
MANIFEST = ROOT / "experiments" / "fast-model-tracks.csv"
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "gtzan-mini"


def write_manifest(data: Path, valid_size: float = 0.2, seed: int = 0) -> Path:
    """All tracks of ``data`` as ``path,label,group,split`` rows; paths relative to the manifest."""
    import os

    from genrekit.data.datasets import open_dataset
    from genrekit.data.splits import holdout_split

    dataset = open_dataset(data, "gtzan")
    _, valid = holdout_split(dataset.tracks, test_size=valid_size, seed=seed, groups="auto")
    valid_ids = {t.track_id for t in valid}
    rows = [
        {"path": Path(os.path.relpath(Path(t.path).resolve(), MANIFEST.parent)).as_posix(), "label": t.label,
         "group": t.group or "", "split": "valid" if t.track_id in valid_ids else "train"}
        for t in dataset.tracks
    ]
    with open(MANIFEST, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["path", "label", "group", "split"])
        writer.writeheader()
        writer.writerows(rows)
    return MANIFEST


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="gtzan-mini folder")
    parser.add_argument("--folds", type=int, default=5, help="cross-validation folds (0: skip)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    args = parser.parse_args()

    import dataclasses

    import torch

    from genrekit.experiments.crossval import cross_validate
    from genrekit.models.files import model_paths
    from genrekit.training.config import load_config
    from genrekit.training.loop import train_model
    from genrekit.utils import atomic_write_text

    torch.set_num_threads(args.threads)
    write_manifest(args.data)
    config = load_config(RECIPE)
    result = train_model(config)
    json_path, weights_path = model_paths(result.model_path)
    print(f"model: {json_path} ({json_path.stat().st_size + weights_path.stat().st_size} bytes), "
          f"{result.n_parameters} parameters, best epoch {result.best_epoch}")
    if not args.folds:
        return
    spec = json.loads(json_path.read_text())
    # "gtzan" folds keep each artist on one side; "folder" knows no artists, so the same artist
    # can be in training and test folds (the optimistic figure most GTZAN papers report)
    for key, kind in (("cross_validation", "gtzan"), ("cross_validation_ungrouped", "folder")):
        cv_config = dataclasses.replace(config, dataset=str(args.data), dataset_kind=kind,
                                        split={"method": "kfold", "valid_size": 0.15})
        with tempfile.TemporaryDirectory() as folder:
            cv = cross_validate(cv_config, args.folds, out_dir=folder)
        spec["metrics"][key] = cv_record(cv, grouped=kind == "gtzan")
        for name, value in spec["metrics"][key].items():
            if name.startswith("track_accuracy"):
                print(f"{key} {name}: {value}")
    atomic_write_text(json_path, json.dumps(spec, indent=2) + "\n")


#: gtzan-mini genres whose 8 clips are all by one artist: an artist-grouped test fold holding
#: them has no training example of the genre, so no model can get them right there.
SINGLE_ARTIST_GENRES = ("blues", "classical", "reggae", "rock")


def cv_record(cv, grouped: bool) -> dict:
    """The model file's record of a cross-validation: accuracy overall and where it is learnable."""
    import numpy as np

    confusion = np.array(cv.confusion)
    learnable = [i for i, label in enumerate(cv.labels) if not grouped or label not in SINGLE_ARTIST_GENRES]
    sub = confusion[np.ix_(learnable, learnable)]
    return {
        "folds": cv.folds,
        "dataset": "gtzan-mini: 80 clips, 8 per genre, 37 artists",
        "grouping": ("artist-disjoint, genre-stratified folds" if grouped else
                     "genre-stratified folds, artists shared between training and test"),
        "validation": "15 % of the training folds (early stopping, temperature)",
        "track_accuracy": round(float(np.trace(confusion) / confusion.sum()), 4),
        "track_accuracy_fold_mean": round(cv.summary["track_accuracy"]["mean"], 4),
        "track_accuracy_fold_std": round(cv.summary["track_accuracy"]["std"], 4),
        "track_macro_f1_fold_mean": round(cv.summary["track_macro_f1"]["mean"], 4),
        "learnable_genres": [cv.labels[i] for i in learnable],
        "track_accuracy_learnable_genres": round(float(np.trace(sub) / confusion[learnable].sum()), 4),
        "tracks_per_fold": [m["n_tracks"] for m in cv.fold_metrics],
        "confusion": cv.confusion,
        "labels": cv.labels,
    }


if __name__ == "__main__":
    main()
