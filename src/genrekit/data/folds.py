"""Fold and side assignment on plain arrays: label codes and group codes in, index arrays out.

The one definition of a stratified or group-disjoint fold, shared by the track-level splits of
:mod:`genrekit.data.splits` and by cross-validation on feature tables (the default model's
recipe, :mod:`genrekit.experiments.taggram_head`).
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from genrekit.errors import DatasetError


def group_kfold(labels: np.ndarray, groups: np.ndarray, n_splits: int, seed: int, *,
                always_stratify: bool = False) -> list[np.ndarray]:
    """Test folds that never split a group, stratified by label where the groups allow it.

    Parameters
    ----------
    labels : np.ndarray
        Shape ``(n,)``: each item's label (any comparable values).
    groups : np.ndarray
        Shape ``(n,)``: each item's group (an artist); items of a group share a fold.
    n_splits : int
        Number of folds.
    seed : int
        Seeds the shuffling of groups.
    always_stratify : bool, default False
        Use ``StratifiedGroupKFold`` even when a label has fewer groups than folds (it then
        balances labels as well as it can; the default drops stratification there instead).

    Returns
    -------
    list of np.ndarray
        ``n_splits`` int arrays indexing the items: each item is in exactly one. sklearn's
        ``StratifiedGroupKFold`` (shuffled), or ``GroupKFold`` when some label has fewer than
        ``n_splits`` groups.

    Raises
    ------
    DatasetError
        Fewer groups than ``max(n_splits, 2)``.
    """
    from sklearn.model_selection import GroupKFold, StratifiedGroupKFold

    n_groups = len(np.unique(groups))
    if n_groups < max(n_splits, 2):
        parts = max(n_splits, 2)
        raise DatasetError(f"only {n_groups} group(s) (artists): cannot make {parts} group-disjoint parts")
    groups_per_label = Counter(label for label, _ in set(zip(np.asarray(labels).tolist(), np.asarray(groups).tolist())))
    if always_stratify or min(groups_per_label.values()) >= n_splits:
        folds = StratifiedGroupKFold(n_splits, shuffle=True, random_state=seed)
    else:  # a label with too few groups cannot be spread over every fold: drop stratification
        folds = GroupKFold(n_splits, shuffle=True, random_state=seed)
    return [test for _, test in folds.split(np.zeros(len(labels)), labels, groups)]


def stratified_sides(labels: np.ndarray, fractions, rng: np.random.Generator) -> np.ndarray:
    """Side of each item (0 train, 1 valid, 2 test) by systematic sampling along the label-grouped
    order: test takes evenly spaced items, then valid takes evenly spaced items among the rest.

    Each label gets floor or ceil of its test share, and the test side holds floor or ceil of
    ``len(labels) * fractions[2]`` items.

    Parameters
    ----------
    labels : np.ndarray
        int, shape ``(n,)``: label codes.
    fractions : sequence of float
        ``(train, valid, test)`` shares, summing to 1.
    rng : np.random.Generator

    Returns
    -------
    np.ndarray
        int, shape ``(n,)``.
    """
    sides = np.zeros(len(labels), int)
    rest = _order_by_label(labels, rng)
    for side, share in ((2, fractions[2]), (1, fractions[1] / (1 - fractions[2]))):
        if share > 0:
            chosen = _evenly_spaced(len(rest), share, rng.random())
            sides[rest[chosen]] = side
            rest = rest[~chosen]
    return sides


def stratified_folds(labels: np.ndarray, n_splits: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Folds dealt round-robin along the label-grouped order: each label gets floor or ceil of its
    share per fold.

    Parameters
    ----------
    labels : np.ndarray
        int, shape ``(n,)``: label codes.
    n_splits : int
    rng : np.random.Generator

    Returns
    -------
    list of np.ndarray
        ``n_splits`` int arrays indexing the items; each item is in exactly one.
    """
    fold_of = np.empty(len(labels), int)
    fold_of[_order_by_label(labels, rng)] = (rng.integers(n_splits) + np.arange(len(labels))) % n_splits
    return [np.flatnonzero(fold_of == fold) for fold in range(n_splits)]


def _order_by_label(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Indices grouped by label, labels in random order, items shuffled within each label."""
    blocks = [rng.permutation(np.flatnonzero(labels == label)) for label in rng.permutation(np.unique(labels))]
    return np.concatenate(blocks)


def _evenly_spaced(n: int, share: float, offset: float) -> np.ndarray:
    """Mask picking every ``1 / share``-th of ``n`` positions: any run of ``m`` consecutive
    positions holds floor or ceil of ``m * share`` picks."""
    steps = np.floor(np.arange(n + 1) * share + offset)
    return np.diff(steps) > 0
