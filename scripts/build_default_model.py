"""Build the bundled default model: a genre head on MSD-musicnn taggrams of the 443 training tracks
of the artist-filtered GTZAN split, and measure it by artist-grouped cross-validation.

1. Reads ``../shared/data/gtzan-msd-taggrams/train.npz`` (taggrams computed by the original
   TensorFlow musicnn, 3 s patches, 1 s hop) and checks that no track of the split's test list,
   and no artist of it, is among them.
2. Cross-validates the recipe (:mod:`genrekit.experiments.taggram_head`) with 3 x 5 artist-grouped,
   genre-stratified folds inside these tracks; fits the softmax temperature on the out-of-fold
   track probabilities; reports accuracy, per-genre recall, confusion and calibration (ECE).
3. Trains the head on all 443 tracks and writes ``src/genrekit/assets/models/default`` (its
   JSON lists every training track and artist) and ``docs/model-card-cv.json``. The
   ``not_music`` block of the model it replaces is carried over (``scripts/fit_not_music.py``
   fits it).

Usage, from the repository root::

    .venv/bin/python scripts/build_default_model.py [--shared ../shared] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from genrekit.data.datasets import GTZAN_GENRES, load_gtzan_artists
from genrekit.data.splits import load_gtzan_split_lists
from genrekit.data.tables import bare_track_id, gtzan_groups, read_table
from genrekit.experiments.taggram_head import (
    HeadRecipe,
    cross_validate_head,
    fit_head,
    fit_track_temperature,
    summarize_head,
)
from genrekit.features.registry import resolve_feature
from genrekit.models.files import save_model

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "src" / "genrekit" / "assets" / "models" / "default"
FEATURE = {"name": "musicnn", "model": "MSD_musicnn", "layer": "taggram"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    labels = list(GTZAN_GENRES)
    table = read_table(args.shared / "data" / "gtzan-msd-taggrams" / "train.npz", labels)
    groups = gtzan_groups(table.tracks)
    check_held_out(table.tracks, groups)

    recipe = HeadRecipe()
    cv = cross_validate_head(table, groups, labels, repeats=args.repeats, recipe=recipe)
    temperature = fit_track_temperature(cv, table.track_index)
    summary = summarize_head(cv, table.track_index, temperature)
    oof = summary["out_of_fold"]
    print(f"artist-grouped CV: {100 * summary['track_accuracy_mean']:.1f} +- {100 * summary['track_accuracy_std']:.1f} % "
          f"over {summary['n_folds']} folds; T = {temperature:.3f}; ECE {100 * summary['ece_before']:.1f} -> "
          f"{100 * summary['ece_after']:.1f} %")
    print("recall:", {label: round(v["recall"], 3) for label, v in oof["per_class"].items()})

    network = fit_head(table.features, cv.track_labels[table.track_index], len(labels), recipe, seed=0)
    feature, _ = resolve_feature(FEATURE, 16000)
    artists = sorted({g.removeprefix("artist:") for g in groups if g.startswith("artist:")})
    spec = {
        "name": "gtzan-msd-taggram-mlp",
        "labels": labels,
        "sample_rate": 16000,
        "segment": {"window": 3.0, "hop": 3.0, "last": "pad"},
        "feature": feature,
        "architecture": network.spec,
        "calibration": {"temperature": round(temperature, 6), "method": "temperature-scaling",
                        "fitted_on": "out-of-fold track probabilities of the artist-grouped CV (mean aggregation)",
                        "ece_before": round(summary["ece_before"], 4), "ece_after": round(summary["ece_after"], 4)},
        "metrics": {"cv_artist": summary},
        "split": {"method": "gtzan-artist", "source": "fault-filtered-train.txt (Kereliuk, Sturm & Larsen 2015)",
                  "counts": {"train": len(table.tracks), "valid": 0, "test": 0},
                  "train": table.tracks, "train_groups": artists},
        "training": {"data": "MSD-musicnn taggrams (TensorFlow musicnn, 3 s patches, 1 s hop) of the 443 "
                             "training tracks", "rows": len(table), "recipe": recipe.__dict__,
                     "torch_version": torch.__version__},
    }
    previous = OUT.with_suffix(".json")
    if previous.is_file() and "not_music" in json.loads(previous.read_text()):
        # the not-music detector reads the taggram, not this head: keep the one fitted by
        # scripts/fit_not_music.py (rerun that script to refit it)
        spec["not_music"] = json.loads(previous.read_text())["not_music"]
    tensors = {f"network.{k}": v for k, v in network.state_dict().items()}
    print("wrote", save_model(OUT, spec, tensors))
    (ROOT / "docs" / "model-card-cv.json").write_text(json.dumps(summary, indent=1) + "\n")


def check_held_out(tracks: list[str], groups: list[str]) -> None:
    """Refuse to build if a test-list track, or an annotated artist of the test list, is in the training data."""
    lists = load_gtzan_split_lists()
    test = {bare_track_id(t) for t in lists["test"]}
    leaked = sorted(test & {bare_track_id(t) for t in tracks})
    if leaked:
        raise SystemExit(f"test-list tracks in the training table: {leaked[:5]}")
    # annotated artists only: an unannotated test clip is not assigned an artist by guesswork
    annotated = load_gtzan_artists()
    test_artists = {"artist:" + annotated[t].strip().lower() for t in test if t in annotated}
    shared = sorted(test_artists & set(groups))
    if shared:
        raise SystemExit(f"test-list artists in the training table: {shared[:5]}")


if __name__ == "__main__":
    main()
