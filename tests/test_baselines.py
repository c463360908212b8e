"""Classical baselines: the rebuilt torch modules must reproduce scikit-learn exactly."""

import json

import numpy as np
import pytest
import torch

from genrekit.errors import ModelError, UsageError
from genrekit.features.summary import SummaryFeatures
from genrekit.models.classical import (
    ABSENT_LOGIT,
    ESTIMATORS,
    make_estimator,
    module_from_estimator,
)
from genrekit.models.registry import build_model

NAMES = sorted(ESTIMATORS)
SMALL = {  # fast settings; the defaults are for real data
    "sklearn-logreg": {},
    "sklearn-svm": {"C": 3.0},
    "sklearn-knn": {"n_neighbors": 7},
    "sklearn-gboost": {"max_iter": 15, "max_leaf_nodes": 7},
}


def blobs(n_classes, n=240, d=6, seed=0, offset=(0.0, 0.0)):
    """Overlapping Gaussian blobs, features on very different scales (standardisation matters)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, n_classes, n)
    centres = rng.normal(0, 1.2, (n_classes, d))
    x = centres[y] + rng.normal(0, 1, (n, d))
    x *= np.logspace(-2, 3, d)
    return x.astype(np.float32), y


def fitted(name, n_classes, seed=0, **params):
    x, y = blobs(n_classes, seed=seed)
    pipeline = make_estimator(name, {**SMALL[name], **params}, seed=0).fit(x.astype(np.float64), y)
    module = module_from_estimator(name, pipeline, n_classes, [x.shape[1]])
    return pipeline, module


@pytest.mark.parametrize("n_classes", [2, 4])
@pytest.mark.parametrize("name", NAMES)
def test_rebuilt_module_predicts_like_sklearn(name, n_classes):
    pipeline, module = fitted(name, n_classes)
    x_new, _ = blobs(n_classes, n=200, seed=1)
    with torch.no_grad():
        logits = module(torch.from_numpy(x_new))
    x64 = x_new.astype(np.float64)
    assert logits.shape == (200, n_classes)
    np.testing.assert_array_equal(logits.argmax(1).numpy(), pipeline.predict(x64))
    if name == "sklearn-svm":  # SVM logits are the decision values, not log-probabilities
        np.testing.assert_allclose(logits.numpy()[:, -1] if n_classes == 2 else logits.numpy(),
                                   pipeline.decision_function(x64), rtol=1e-5, atol=1e-5)
    else:
        np.testing.assert_allclose(torch.softmax(logits.double(), 1).numpy(), pipeline.predict_proba(x64),
                                   atol=1e-6)


def test_svm_one_vs_one_decisions_match():
    pipeline, module = fitted("sklearn-svm", 4)
    x_new, _ = blobs(4, n=100, seed=2)
    pipeline[-1].decision_function_shape = "ovo"
    z = (torch.from_numpy(x_new).double() - module.mean) / module.scale
    np.testing.assert_allclose(module.ovo_decision(z).numpy(), pipeline.decision_function(x_new.astype(np.float64)),
                               rtol=1e-9, atol=1e-9)


def test_knn_distance_weights_match():
    pipeline, module = fitted("sklearn-knn", 3, weights="distance")
    x_new, _ = blobs(3, n=100, seed=3)
    with torch.no_grad():
        probabilities = torch.softmax(module(torch.from_numpy(x_new)).double(), 1).numpy()
    np.testing.assert_allclose(probabilities, pipeline.predict_proba(x_new.astype(np.float64)), atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_spec_rebuilds_the_module(name):
    _, module = fitted(name, 3)
    spec = json.loads(json.dumps(module.spec))
    rebuilt = build_model(spec, 3).eval()
    rebuilt.load_state_dict(module.state_dict())
    x_new = torch.from_numpy(blobs(3, n=50, seed=4)[0])
    with torch.no_grad():
        assert torch.equal(rebuilt(x_new), module(x_new))


def test_unfitted_spec_is_a_model_error():
    with pytest.raises(ModelError, match="train it with genrekit train"):
        build_model({"name": "sklearn-svm", "C": 3}, 3)


def test_labels_without_training_data_get_no_probability():
    x, y = blobs(3)
    pipeline = make_estimator("sklearn-logreg").fit(x.astype(np.float64), y)
    module = module_from_estimator("sklearn-logreg", pipeline, 5, [x.shape[1]])
    # fitted classes 0, 1, 2 of five labels: here they are the first three columns
    with torch.no_grad():
        logits = module(torch.from_numpy(x[:4]))
    assert (logits[:, 3:] == ABSENT_LOGIT).all()
    assert torch.softmax(logits, 1)[:, 3:].max() < 1e-30


def test_time_series_features_are_pooled_to_mean_and_std():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 4, 9)).astype(np.float32)
    y = rng.integers(0, 2, 60)
    pooled = np.concatenate([x.astype(np.float64).mean(-1), x.astype(np.float64).std(-1)], axis=1)
    pipeline = make_estimator("sklearn-logreg").fit(pooled, y)
    module = module_from_estimator("sklearn-logreg", pipeline, 2, [4, 9])
    np.testing.assert_allclose(module.vectors(torch.from_numpy(x)).numpy(), pooled, rtol=1e-12)
    with torch.no_grad():
        probabilities = torch.softmax(module(torch.from_numpy(x)).double(), 1).numpy()
    np.testing.assert_allclose(probabilities, pipeline.predict_proba(pooled), atol=1e-6)


@pytest.mark.parametrize(
    "name, params, message",
    [("sklearn-forest", {}, "unknown baseline"), ("sklearn-svm", {"kernel": "poly"}, "RBF"),
     ("sklearn-knn", {"p": 1}, "Euclidean"), ("sklearn-logreg", {"Cee": 1}, "Cee")],
)
def test_bad_estimator_settings(name, params, message):
    with pytest.raises(UsageError, match=message):
        make_estimator(name, params)


def test_summary_features_module():
    rng = np.random.default_rng(0)
    samples = (0.1 * rng.normal(size=(2, 8000))).astype(np.float32)
    out = SummaryFeatures(sr=8000)(torch.from_numpy(samples))
    from genrekit.features.summary import summary_vector

    assert out.shape == (2, 57) and out.dtype == torch.float32
    np.testing.assert_allclose(out[1].numpy(), summary_vector(samples[1], 8000).astype(np.float32))


def test_baseline_trains_saves_and_loads(tmp_path):
    """Through ``train_model`` and ``load_model``: the file's model predicts like the fitted one."""
    from tones import SR, TINY_FEATURE, TINY_SEGMENT, make_tone_dataset, tone_track

    from genrekit.inference.model import load_model
    from genrekit.training.config import TrainConfig
    from genrekit.training.loop import train_model
    from genrekit.apps.console import set_verbosity

    set_verbosity(quiet=True)
    try:
        tones = make_tone_dataset(tmp_path / "tones")
        config = TrainConfig.from_dict(dict(
            dataset=str(tones), out=str(tmp_path / "svm"), sample_rate=SR, segment=TINY_SEGMENT,
            feature=TINY_FEATURE, architecture={"name": "sklearn-svm", "C": 3.0},
            split={"method": "random", "valid_size": 0.2, "test_size": 0.2}, cache_dir="",
        ))
        result = train_model(config)
    finally:
        set_verbosity(quiet=False)
    assert result.metrics["test"]["track_accuracy"] > 1 / 3
    assert result.spec.calibration["method"] == "temperature-scaling"
    model = load_model(result.model_path)
    segments = torch.from_numpy(np.stack([tone_track(f, 0.5, np.random.default_rng(1)) for f in (220, 700, 2000)]))
    with torch.no_grad():
        expected = result.network(model.feature(segments))
    torch.testing.assert_close(model.segment_logits(segments), expected)
    assert model.segment_probabilities(segments).argmax(1).tolist() == [1, 2, 0]  # high, low, mid sorted


def test_gboost_sends_values_equal_to_a_threshold_left_like_sklearn():
    pipeline, module = fitted("sklearn-gboost", 3)
    x_new, _ = blobs(3, n=60, seed=5)
    z = pipeline[0].transform(x_new.astype(np.float64))
    # put every row exactly on the threshold of some split: the comparison must be "<=" there
    for row in range(len(z)):
        tree = row % module.feature.shape[0]
        feature, threshold = int(module.feature[tree, 0]), float(module.threshold[tree, 0])
        z[row, feature] = threshold
    with torch.no_grad():
        scores = module.scores(torch.from_numpy(z))
    np.testing.assert_allclose(torch.softmax(scores, 1).numpy(), pipeline[-1].predict_proba(z), atol=1e-9)
