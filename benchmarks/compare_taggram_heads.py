"""Compare genre heads by artist-grouped cross-validation: the default taggram MLP against a
logistic regression and other heads on the same folds; writes ``docs/taggram-heads.{md,json}``.

Part A, the 443 training tracks of the artist-filtered GTZAN split
(``../shared/data/gtzan-msd-taggrams/train.npz``: MSD-musicnn taggrams from TensorFlow musicnn,
3 s patches, 1 s hop). Every head classifies rows and averages row probabilities per track;
folds are :func:`genrekit.experiments.taggram_head.cross_validate_rows`'s (3 repeats x 5
artist-grouped, genre-stratified folds, groups by :func:`genrekit.data.tables.gtzan_groups`), the
same folds for every head, so fold accuracies pair up.

Part B, gtzan-mini (80 clips with audio, 37 artists): the musicnn *embedding* head (penultimate
layer, the previous default's input) cannot be scored on Part A's tracks, which have no audio
here. On gtzan-mini both inputs are computed by genrekit's musicnn port (3 s segments, 3 s hop)
and the heads are cross-validated with 3 x 4 artist-grouped folds; the bundled default model
(trained on Part A's tracks) is also scored on the gtzan-mini clips that are neither among its
training tracks nor by one of its training artists.

Usage, from the repository root::

    .venv/bin/python benchmarks/compare_taggram_heads.py [--shared ../shared] [--repeats 3] [--skip-mini]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from genrekit.data.datasets import GTZAN_GENRES
from genrekit.data.tables import FeatureTable, bare_track_id, gtzan_groups, read_table
from genrekit.experiments.taggram_head import HeadRecipe, cross_validate_head, cross_validate_rows

ROOT = Path(__file__).resolve().parents[1]
TAGGRAM = {"name": "musicnn", "model": "MSD_musicnn", "layer": "taggram"}
EMBEDDING = {"name": "musicnn", "model": "MSD_musicnn", "layer": "penultimate"}


def sklearn_head(kind: str, transform: str = "logit", **params):
    """``fit`` for :func:`cross_validate_rows`: optional logit, standardisation, a scikit-learn classifier."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    def prepare(x):
        return np.log(np.clip(x, 1e-6, 1 - 1e-6) / (1 - np.clip(x, 1e-6, 1 - 1e-6))) if transform == "logit" else x

    def fit(features, y, n_classes, seed):
        estimator = (LogisticRegression(max_iter=2000, **params) if kind == "logreg"
                     else KNeighborsClassifier(**params))
        model = make_pipeline(StandardScaler(), estimator).fit(prepare(features), y)

        def predict(rows):
            out = np.full((len(rows), n_classes), np.log(1e-6))
            out[:, model[-1].classes_] = np.log(np.clip(model.predict_proba(prepare(rows)), 1e-6, None))
            return out

        return predict

    return fit


def mlp_head(recipe: HeadRecipe):
    from genrekit.experiments.taggram_head import fit_head, row_logits

    def fit(features, y, n_classes, seed):
        network = fit_head(features, y, n_classes, recipe, seed=seed)
        return lambda rows: row_logits(network, rows)

    return fit


def run_heads(table: FeatureTable, groups, labels, heads: dict, folds: int, repeats: int) -> dict:
    results = {}
    for name, fit in heads.items():
        started = time.perf_counter()
        if fit is None:
            cv = cross_validate_head(table, groups, labels, folds=folds, repeats=repeats)
        else:
            cv = cross_validate_rows(table, groups, labels, fit, folds=folds, repeats=repeats)
        accuracies = np.array(cv.fold_accuracies)
        results[name] = {"fold_accuracies": accuracies.round(4).tolist(), "mean": float(accuracies.mean()),
                         "std": float(accuracies.std(ddof=1)), "seconds": round(time.perf_counter() - started, 1)}
        print(f"{name}: {100 * accuracies.mean():.1f} +- {100 * accuracies.std(ddof=1):.1f} %", flush=True)
    reference = np.array(next(iter(results.values()))["fold_accuracies"])
    for result in list(results.values())[1:]:
        difference = reference - np.array(result["fold_accuracies"])
        result["paired_vs_first"] = {"mean_difference": float(difference.mean()),
                                     "sd": float(difference.std(ddof=1)),
                                     "wins": int((difference > 1e-9).sum()), "ties": int((abs(difference) <= 1e-9).sum()),
                                     "losses": int((difference < -1e-9).sum())}
    return results


def part_a(shared: Path, repeats: int) -> dict:
    labels = list(GTZAN_GENRES)
    table = read_table(shared / "data" / "gtzan-msd-taggrams" / "train.npz", labels)
    groups = gtzan_groups(table.tracks)
    heads = {
        "taggram MLP (the default recipe)": None,
        "taggram logistic regression (logit, C = 0.03)": sklearn_head("logreg", C=0.03),
        "taggram logistic regression (raw probabilities, C = 0.03)": sklearn_head("logreg", "raw", C=0.03),
        "taggram k-NN (logit, k = 15)": sklearn_head("knn", n_neighbors=15),
        "taggram MLP, no logit (raw probabilities)": mlp_head(HeadRecipe(input_transform=None)),
        "taggram MLP, 40 epochs (the same, trained longer)": mlp_head(HeadRecipe(epochs=40)),
    }
    return {"tracks": len(table.tracks), "rows": len(table), "groups": len(set(groups)), "folds": 5,
            "repeats": repeats, "heads": run_heads(table, groups, labels, heads, 5, repeats)}


def part_b(data: Path, repeats: int) -> dict:
    from genrekit.data.datasets import open_dataset
    from genrekit.data.extract import extract_features, open_cache
    from genrekit.evaluation.evaluate import evaluate_table
    from genrekit.features.registry import resolve_feature
    from genrekit.inference.model import load_model

    dataset = open_dataset(data, "gtzan")
    labels = list(GTZAN_GENRES)
    specs, modules = zip(*[resolve_feature(spec, 16000) for spec in (TAGGRAM, EMBEDDING)])
    features = extract_features(dataset.tracks, list(specs), sample_rate=16000,
                                segment={"window": 3.0, "hop": 3.0, "last": "pad"}, cache=open_cache(None),
                                modules=list(modules), description="gtzan-mini musicnn")
    keep = ~features.silent
    ids = [features.tracks[i].track_id for i in features.track_index[keep]]
    groups = [t.group or f"track:{t.track_id}" for t in features.tracks]
    tables = {name: FeatureTable(x[keep], features.track_index[keep], [t.track_id for t in features.tracks],
                                 [t.label for t in features.tracks], f"gtzan-mini {name}")
              for name, x in zip(("taggram", "embedding"), features.inputs)}
    assert len(set(ids)) == len(features.tracks)
    heads = {
        "taggram MLP (the default recipe)": ("taggram", mlp_head(HeadRecipe())),
        # 5 epochs are ~390 steps on part A's 10k rows but ~25 on 640 rows: the same steps here
        "taggram MLP, 80 epochs (about the default's optimiser steps)": ("taggram", mlp_head(HeadRecipe(epochs=80))),
        "taggram logistic regression (logit, C = 0.03)": ("taggram", sklearn_head("logreg", C=0.03)),
        "embedding logistic regression (C = 0.1; the previous default's recipe)":
            ("embedding", sklearn_head("logreg", "raw", C=0.1)),
        "embedding MLP (the taggram recipe without logit)":
            ("embedding", mlp_head(HeadRecipe(input_transform=None))),
    }
    results = {}
    for name, (which, fit) in heads.items():
        results.update(run_heads(tables[which], groups, labels, {name: fit}, 4, repeats))
    reference = np.array(results["taggram MLP (the default recipe)"]["fold_accuracies"])
    for name, result in results.items():
        if name != "taggram MLP (the default recipe)":
            difference = reference - np.array(result["fold_accuracies"])
            result["paired_vs_first"] = {"mean_difference": float(difference.mean()), "sd": float(difference.std(ddof=1)),
                                         "wins": int((difference > 1e-9).sum()),
                                         "ties": int((abs(difference) <= 1e-9).sum()),
                                         "losses": int((difference < -1e-9).sum())}
    # the bundled default, trained on the 443 tracks: only clips it has not heard, by artists it has not heard
    model = load_model("default")
    trained = {bare_track_id(t) for t in model.spec.split["train"]}
    trained_artists = set(model.spec.split.get("train_groups") or [])
    fresh = [i for i, t in enumerate(features.tracks) if bare_track_id(t.track_id) not in trained
             and (t.group or "").strip().lower() not in trained_artists]
    table = tables["taggram"]
    scored = evaluate_table(model, table.subset(fresh, "gtzan-mini (unheard)"), split="all")
    heard = len(features.tracks) - len(fresh)
    return {"clips": len(features.tracks), "artists": len(set(groups)), "folds": 4, "repeats": repeats,
            "heads": results,
            "bundled_default": {"clips": len(fresh), "left_out": heard,
                                "genres": sorted({table.labels[i] for i in fresh}),
                                "track_accuracy": scored.metrics["track_accuracy"]}}


def markdown(a: dict | None, b: dict | None, command: str) -> str:
    lines = ["# Taggram heads compared by artist-grouped cross-validation", "",
             f"Written by `{command}`; do not edit by hand. Track accuracy, mean ± sample std over folds; "
             "*vs default* is the paired fold-wise difference (default minus this head) and the default's "
             "wins / ties / losses over the same folds.", ""]
    for title, part, what in (
        ("A. 443 training tracks of the artist-filtered GTZAN split (MSD taggrams from TensorFlow musicnn)", a,
         lambda p: f"{p['tracks']} tracks, {p['rows']} rows (1 s hop), {p['groups']} artist groups, "
                   f"{p['repeats']} x {p['folds']} folds."),
        ("B. gtzan-mini (audio through genrekit's musicnn port, 3 s hop)", b,
         lambda p: f"{p['clips']} clips, {p['artists']} artist groups, {p['repeats']} x {p['folds']} folds; four "
                   "genres are one artist each, so no head can exceed 60 % here."),
    ):
        if part is None:
            continue
        lines += [f"## {title}", "", what(part), "", "| head | track accuracy | vs default | s |", "|---|---|---|---:|"]
        for name, r in part["heads"].items():
            paired = r.get("paired_vs_first")
            versus = (f"{100 * paired['mean_difference']:+.1f} pts ({paired['wins']}/{paired['ties']}/{paired['losses']})"
                      if paired else "")
            lines.append(f"| {name} | {100 * r['mean']:.1f} ± {100 * r['std']:.1f} % | {versus} | {r['seconds']:.0f} |")
        if "bundled_default" in part:
            d = part["bundled_default"]
            lines += ["", f"The bundled default model (trained on part A's 443 tracks) on the {d['clips']} gtzan-mini "
                          f"clips it has not heard, by artists it has not heard ({d['left_out']} clips left out; genres: "
                          f"{', '.join(d['genres'])}): **{100 * d['track_accuracy']:.1f} %** track accuracy."]
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-mini", action="store_true", help="part A only")
    parser.add_argument("--skip-443", action="store_true", help="part B only")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "taggram-heads")
    args = parser.parse_args()
    torch.set_num_threads(1)
    a = None if args.skip_443 else part_a(args.shared, args.repeats)
    args.out.with_suffix(".json").write_text(json.dumps({"part_a": a, "part_b": None}, indent=1) + "\n")
    b = None if args.skip_mini else part_b(args.shared / "data" / "gtzan-mini", args.repeats)
    command = "benchmarks/compare_taggram_heads.py" + (" --skip-mini" if args.skip_mini else "") + (
        " --skip-443" if args.skip_443 else "")
    args.out.with_suffix(".json").write_text(json.dumps({"part_a": a, "part_b": b}, indent=1) + "\n")
    args.out.with_suffix(".md").write_text(markdown(a, b, command))
    print("wrote", args.out.with_suffix(".md"))


if __name__ == "__main__":
    main()
