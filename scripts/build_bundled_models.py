"""Build the models bundled with genrekit (``src/genrekit/assets/models/NAME``) and measure them by
artist-grouped cross-validation inside their training data only.

Every bundled model is a head on a feature table (:data:`BUNDLED` says which table, feature,
recipe and model-card file); building one:

1. reads the table and checks that no track of the GTZAN split's test list, and no annotated
   artist of it, is among its tracks;
2. cross-validates the recipe (:mod:`genrekit.experiments.taggram_head`) with 3 x 5
   artist-grouped, genre-stratified folds inside these tracks; fits the softmax temperature on
   the out-of-fold track probabilities; reports accuracy, per-genre recall and calibration (ECE);
3. trains the head on all tracks and writes the model (its JSON lists every training track and
   artist) and the cross-validation summary for the model card. The ``not_music`` block of the
   model it replaces is carried over (``scripts/fit_not_music.py`` fits it).

``default`` is a genre head on MSD-musicnn taggrams of the 443 training tracks of the
artist-filtered GTZAN split (``../shared/data/gtzan-msd-taggrams/train.npz``: taggrams from the
original TensorFlow musicnn, 3 s patches, 1 s hop). (A ``fast`` log-mel CNN trained on the 80
gtzan-mini clips used to be bundled too; at 15 % artist-grouped accuracy it was removed, since
the musicnn path already classifies a 30 s clip in about 0.03 s.)

Usage, from the repository root::

    .venv/bin/python scripts/build_bundled_models.py [NAME ...] [--shared ../shared] [--repeats 3] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass, field
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
MODELS = ROOT / "src" / "genrekit" / "assets" / "models"


@dataclass(frozen=True)
class Bundled:
    """What a bundled model is trained on and how."""

    name: str  # recorded in the model file
    table: str  # relative to the shared folder
    feature: dict
    sample_rate: int
    data: str  # how the model file describes its training data
    card: str  # cross-validation summary for the model card, relative to the repository
    recipe: HeadRecipe = field(default_factory=HeadRecipe)


BUNDLED = {
    "default": Bundled(
        name="gtzan-msd-taggram-mlp",
        table="data/gtzan-msd-taggrams/train.npz",
        feature={"name": "musicnn", "model": "MSD_musicnn", "layer": "taggram"},
        sample_rate=16000,
        data="MSD-musicnn taggrams (TensorFlow musicnn, 3 s patches, 1 s hop) of the 443 training tracks",
        card="docs/model-card-cv.json",
    ),
}


def build(bundled: Bundled, shared: Path, out: Path, repeats: int) -> None:
    torch.set_num_threads(1)
    labels = list(GTZAN_GENRES)
    table = read_table(shared / bundled.table, labels)
    groups = gtzan_groups(table.tracks)
    check_held_out(table.tracks, groups)

    recipe = bundled.recipe
    cv = cross_validate_head(table, groups, labels, repeats=repeats, recipe=recipe)
    temperature = fit_track_temperature(cv, table.track_index)
    summary = summarize_head(cv, table.track_index, temperature)
    oof = summary["out_of_fold"]
    print(f"artist-grouped CV: {100 * summary['track_accuracy_mean']:.1f} +- {100 * summary['track_accuracy_std']:.1f} % "
          f"over {summary['n_folds']} folds; T = {temperature:.3f}; ECE {100 * summary['ece_before']:.1f} -> "
          f"{100 * summary['ece_after']:.1f} %")
    print(f"out-of-fold track accuracy with a 1 s hop {100 * summary['oof_track_accuracy_1s_hop']:.1f} %, "
          f"with a 3 s hop {100 * summary['oof_track_accuracy_3s_hop']:.1f} %")
    print("recall:", {label: round(v["recall"], 3) for label, v in oof["per_class"].items()})

    network = fit_head(table.features, cv.track_labels[table.track_index], len(labels), recipe, seed=0)
    feature, _ = resolve_feature(bundled.feature, bundled.sample_rate)
    artists = sorted({g.removeprefix("artist:") for g in groups if g.startswith("artist:")})
    spec = {
        "name": bundled.name,
        "labels": labels,
        "sample_rate": bundled.sample_rate,
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
        "training": {"data": bundled.data, "rows": len(table), "recipe": asdict(recipe),
                     "torch_version": torch.__version__},
    }
    previous = MODELS / f"{out.name}.json"  # the bundled model this build replaces
    if previous.is_file() and "not_music" in json.loads(previous.read_text()):
        # the not-music detector reads the taggram, not this head: keep the one fitted by
        # scripts/fit_not_music.py (rerun that script to refit it)
        spec["not_music"] = json.loads(previous.read_text())["not_music"]
    tensors = {f"network.{k}": v for k, v in network.state_dict().items()}
    print("wrote", save_model(out, spec, tensors))
    card = ROOT / bundled.card if out.parent == MODELS else out.with_suffix(".cv.json")
    card.write_text(json.dumps(summary, indent=1) + "\n")


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="*", default=list(BUNDLED), metavar="NAME",
                        help=f"models to build ({', '.join(BUNDLED)}; default: all)")
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=MODELS,
                        help="folder for NAME.json + NAME.safetensors (default: the package's bundled models; "
                             "elsewhere the CV summary goes next to the model, the model card is left alone)")
    args = parser.parse_args()
    unknown = sorted(set(args.names) - set(BUNDLED))
    if unknown:
        parser.error(f"unknown bundled model {unknown[0]!r} (known: {', '.join(BUNDLED)})")
    for name in args.names:
        build(BUNDLED[name], args.shared, args.out / name, args.repeats)


if __name__ == "__main__":
    main()
