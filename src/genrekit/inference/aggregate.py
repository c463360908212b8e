"""Segments to track: turn per-segment class probabilities into one decision per file.
"""

from __future__ import annotations

import numpy as np

from genrekit.errors import UsageError

#: Ways to combine segments into a track, as ``--aggregate`` and ``aggregate=`` take them.
AGGREGATIONS = ("mean", "vote")


def check_aggregation(method) -> str:
    """``method`` if it is one of :data:`AGGREGATIONS`.

    Parameters
    ----------
    method : str

    Returns
    -------
    str

    Raises
    ------
    UsageError
        Any other value (one line).
    """
    if method not in AGGREGATIONS:
        raise UsageError(f"aggregate must be {' or '.join(repr(a) for a in AGGREGATIONS)}, not {method!r}")
    return method


def aggregate_probabilities(
    probabilities: np.ndarray, method: str = "mean", weights: np.ndarray | None = None
) -> np.ndarray:
    """Combine segment probabilities into track probabilities.

    ``method="mean"`` averages the probabilities, weighted by ``weights`` (for example the share of
    real audio in each segment, so a mostly-padded last window counts less). ``method="vote"``
    gives each segment one vote for its most probable class and returns the vote shares; ties
    between classes with equal votes are broken by the mean probability, so the result's argmax
    is always well defined.

    Parameters
    ----------
    probabilities : np.ndarray
        Shape ``(n_segments, n_classes)``, rows summing to 1.
    method : {"mean", "vote"}, default "mean"
    weights : np.ndarray, optional
        Shape ``(n_segments,)``, non-negative; all ones by default (and when they sum to 0).

    Returns
    -------
    np.ndarray
        float64, shape ``(n_classes,)``, summing to 1.

    Raises
    ------
    UsageError
        Unknown ``method``.
    ValueError
        ``probabilities`` is not two-dimensional or has no rows.

    Examples
    --------
    >>> import numpy as np
    >>> p = np.array([[0.6, 0.4], [0.6, 0.4], [0.0, 1.0]])
    >>> aggregate_probabilities(p).round(3), aggregate_probabilities(p, "vote").round(3)
    (array([0.4, 0.6]), array([0.667, 0.333]))
    """
    check_aggregation(method)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.ndim != 2 or probabilities.shape[0] == 0:
        raise ValueError(f"expected (n_segments > 0, n_classes) probabilities, got {probabilities.shape}")
    if weights is None:
        weights = np.ones(probabilities.shape[0])
    weights = np.asarray(weights, dtype=np.float64)
    if weights.sum() <= 0:
        weights = np.ones_like(weights)
    mean = (probabilities * weights[:, None]).sum(axis=0) / weights.sum()
    if method == "mean":
        return mean
    if method == "vote":
        votes = np.bincount(probabilities.argmax(axis=1), weights=weights, minlength=probabilities.shape[1])
        shares = votes / votes.sum()
        # a vanishing nudge from the mean probability breaks ties without reordering real votes
        nudged = shares + 1e-9 * mean
        return nudged / nudged.sum()
    raise AssertionError(method)  # every name check_aggregation accepts is handled above
