"""Nested artist-grouped cross-validation of the default genre head's selection: is a head chosen
among candidates by inner cross-validation better, on outer folds it never saw, than today's recipe?

The 443 training tracks of the artist-filtered GTZAN split (``../shared/data/gtzan-msd-taggrams/
train.npz``); outer folds: 5 artist-grouped, genre-stratified folds (``genrekit.data.folds.group_kfold``, always stratified:
groups by :func:`genrekit.data.tables.gtzan_groups`); inside each outer training part, 3 inner
folds of the same kind score every candidate (mean track accuracy; a track's answer is the mean
of its rows' probabilities, as ``genrekit predict`` does), the best is refitted on the whole outer
training part and scored on the outer fold; 3 repeats with other shuffles. The same inner
selection on all 443 tracks names the head to ship (``selected_on_all_tracks``). The figure reported
is that outer score, so it is not the maximum of the candidates tried; today's recipe is scored
on the same outer folds. Candidates (:data:`CANDIDATES`, all one MLP as the model file stores
it): today's recipe (:class:`genrekit.experiments.taggram_head.HeadRecipe`), label smoothing
0.1, class-balanced (inverse-frequency weights: blues and rock are the weak genres), both,
class-balanced with 256 hidden units, class-balanced with 8 epochs. The ensemble of all
candidates (mean of their probabilities) is scored for information, not selected. Nothing of
the validation or test lists is read. Writes ``docs/taggram-heads-nested.json``.

Usage, from the repository root (about 400 head fits of a second each; under 10 minutes on one core)::

    .venv/bin/python benchmarks/nested_taggram_heads.py [--shared ../shared]
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from genrekit.data.datasets import GTZAN_GENRES
from genrekit.data.folds import group_kfold
from genrekit.data.tables import gtzan_groups, read_table
from genrekit.evaluation.metrics import softmax, track_probabilities
from genrekit.experiments.taggram_head import HeadRecipe, fit_head, row_logits

ROOT = Path(__file__).resolve().parents[1]
#: Heads that ship as one MLP (the model file's ``mlp`` architecture): the selection is among these.
CANDIDATES = {"recipe": HeadRecipe(), "label-smoothing-0.1": HeadRecipe(label_smoothing=0.1),
              "class-balanced": HeadRecipe(class_balance=True),
              "class-balanced+label-smoothing-0.1": HeadRecipe(class_balance=True, label_smoothing=0.1),
              "class-balanced-hidden-256": HeadRecipe(class_balance=True, hidden=256),
              "class-balanced-8-epochs": HeadRecipe(class_balance=True, epochs=8)}
#: Scored for information only (it would need an ensemble architecture to ship): the mean of
#: the candidates' probabilities.
ENSEMBLE = "ensemble-of-the-candidates"
OUTER, INNER, REPEATS = 5, 3, 3


def track_accuracy(probabilities, track_index, tracks, track_y) -> float:
    per_track = track_probabilities(probabilities, track_index, len(track_y))[tracks]
    return float((per_track.argmax(1) == track_y[tracks]).mean())


def fold_probabilities(table, track_y, train_tracks, test_rows, names, seed) -> dict:
    """Row probabilities of ``test_rows`` for each named head fitted on ``train_tracks``."""
    train_rows = np.isin(table.track_index, train_tracks)
    out = {}
    for name in names:
        if name == ENSEMBLE:
            continue
        network = fit_head(table.features[train_rows], track_y[table.track_index[train_rows]], 10,
                           CANDIDATES[name], seed=seed)
        out[name] = softmax(row_logits(network, table.features[test_rows]))
    if ENSEMBLE in names:
        out[ENSEMBLE] = np.mean([out[name] for name in CANDIDATES], axis=0)
    return out


def grouped_folds(y: np.ndarray, groups: np.ndarray, n_splits: int, seed: int):
    """``(train, test)`` index pairs of genrekit's artist-grouped, genre-stratified folds."""
    everything = np.arange(len(y))
    for test in group_kfold(y, groups, n_splits, seed, always_stratify=True):
        yield np.setdiff1d(everything, test), test


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    parser.add_argument("--json", type=Path, default=ROOT / "docs" / "taggram-heads-nested.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    labels = list(GTZAN_GENRES)
    table = read_table(args.shared / "data" / "gtzan-msd-taggrams" / "train.npz", labels)
    groups = np.array(gtzan_groups(table.tracks))
    track_y = np.array([labels.index(label) for label in table.labels])
    names = [*CANDIDATES, ENSEMBLE]
    folds, started = [], time.time()
    for repeat in range(REPEATS):
        for k, (train, test) in enumerate(grouped_folds(track_y, groups, OUTER, 100 + repeat)):
            inner_scores = {name: [] for name in names}
            for inner_train, inner_test in grouped_folds(track_y[train], groups[train], INNER, 200 + 10 * repeat + k):
                test_rows = np.isin(table.track_index, train[inner_test])
                probabilities = fold_probabilities(table, track_y, train[inner_train], test_rows, names, seed=k)
                for name, p in probabilities.items():
                    inner_scores[name].append(track_accuracy(p, table.track_index[test_rows], train[inner_test],
                                                             track_y))
            chosen = max(CANDIDATES, key=lambda name: np.mean(inner_scores[name]))
            test_rows = np.isin(table.track_index, test)
            probabilities = fold_probabilities(table, track_y, train, test_rows, names, seed=k)
            score = {name: track_accuracy(p, table.track_index[test_rows], test, track_y)
                     for name, p in probabilities.items()}
            folds.append({"repeat": repeat, "fold": k, "tracks": len(test),
                          "inner_mean": {n: round(float(np.mean(v)), 4) for n, v in inner_scores.items()},
                          "chosen": chosen, "outer_chosen": round(score[chosen], 4),
                          "outer_recipe": round(score["recipe"], 4),
                          "outer_all": {n: round(v, 4) for n, v in score.items()}})
            print({k: v for k, v in folds[-1].items() if k != "inner_mean"}, f"{time.time() - started:.0f} s",
                  flush=True)
    # the same selection on all 443 tracks: the head the bundled model would ship
    final_scores = {name: [] for name in CANDIDATES}
    for repeat in range(REPEATS):
        everything = np.arange(len(track_y))
        for inner_train, inner_test in grouped_folds(track_y, groups, INNER, 300 + repeat):
            test_rows = np.isin(table.track_index, inner_test)
            probabilities = fold_probabilities(table, track_y, everything[inner_train], test_rows, list(CANDIDATES),
                                               seed=repeat)
            for name, p in probabilities.items():
                final_scores[name].append(track_accuracy(p, table.track_index[test_rows], inner_test, track_y))
    selected = max(CANDIDATES, key=lambda name: np.mean(final_scores[name]))
    nested = np.array([f["outer_chosen"] for f in folds])
    recipe = np.array([f["outer_recipe"] for f in folds])
    report = {"procedure": __doc__.split("\n\n")[1].replace("\n", " "), "folds": folds,
              "selected_on_all_tracks": selected,
              "selection_scores_on_all_tracks": {n: round(float(np.mean(v)), 4) for n, v in final_scores.items()},
              "selected_recipe": asdict(CANDIDATES[selected]),
              "nested_track_accuracy_mean": round(float(nested.mean()), 4),
              "nested_track_accuracy_std": round(float(nested.std(ddof=1)), 4),
              "recipe_track_accuracy_mean": round(float(recipe.mean()), 4),
              "recipe_track_accuracy_std": round(float(recipe.std(ddof=1)), 4),
              "paired_difference_mean": round(float((nested - recipe).mean()), 4),
              "paired_difference_std": round(float((nested - recipe).std(ddof=1)), 4),
              "outer_folds_nested_better_equal_worse": [int((nested > recipe).sum()), int((nested == recipe).sum()),
                                                        int((nested < recipe).sum())],
              "chosen_counts": {n: sum(f["chosen"] == n for f in folds) for n in CANDIDATES},
              "outer_mean_per_head_for_information": {n: round(float(np.mean([f["outer_all"][n] for f in folds])), 4)
                                                      for n in names},
              "seconds": round(time.time() - started)}
    print({k: v for k, v in report.items() if k not in ("folds", "procedure")})
    args.json.write_text(json.dumps(report, indent=1) + "\n")
    print("wrote", args.json)


if __name__ == "__main__":
    main()
