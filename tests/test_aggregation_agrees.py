"""One aggregation: evaluation's per-track probabilities are prediction's, for every method."""

import numpy as np
import pytest

from genrekit.evaluation.metrics import summarize_predictions, track_probabilities
from genrekit.inference.aggregate import AGGREGATIONS, aggregate_probabilities


@pytest.mark.parametrize("method", AGGREGATIONS)
@pytest.mark.parametrize("weights", ["ones", "random", "zero-track"])
def test_evaluation_aggregates_tracks_as_prediction_does(method, weights):
    rng = np.random.default_rng(3)
    probabilities = rng.dirichlet(np.ones(4), size=30)
    track_index = np.repeat(np.arange(5), 6)
    w = {"ones": np.ones(30), "random": rng.uniform(0.1, 1, 30)}.get(weights)
    if weights == "zero-track":
        w = rng.uniform(0.1, 1, 30)
        w[track_index == 2] = 0.0  # a track whose weights are all zero
    per_track = track_probabilities(probabilities, track_index, 6, w, method)
    for track in range(5):
        rows = track_index == track
        expected = aggregate_probabilities(probabilities[rows], method, w[rows])
        np.testing.assert_allclose(per_track[track], expected)
    assert np.isnan(per_track[5]).all()  # no segments


def test_vote_is_evaluated():
    # three weak votes for class 1 beat one confident segment of class 0 by vote, not by mean
    probabilities = np.array([[0.97, 0.03], [0.4, 0.6], [0.4, 0.6], [0.4, 0.6]])
    track_index = np.zeros(4, dtype=int)
    labels = np.array([1])
    by_mean = summarize_predictions(probabilities, track_index, labels, ["a", "b"], aggregate="mean")
    by_vote = summarize_predictions(probabilities, track_index, labels, ["a", "b"], aggregate="vote")
    assert by_mean["track_accuracy"] == 0.0 and by_vote["track_accuracy"] == 1.0
