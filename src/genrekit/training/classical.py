"""Fitting scikit-learn baselines (``sklearn-*`` architectures) on a run's training segments; the
fitted estimator is exported as a torch module (:mod:`genrekit.models.classical`).
"""

from __future__ import annotations

import logging
import time

import torch

from genrekit.errors import UsageError
from genrekit.models.classical import (
    build_module,
    make_estimator,
    module_from_estimator,
)

logger = logging.getLogger(__name__)


def train_baseline(config):
    """Fit a scikit-learn baseline on the training segments of ``config``'s split.

    The counterpart of :func:`genrekit.training.loop.train_model` for ``sklearn-*``
    architectures: epoch settings do not apply; the fitted estimator becomes a torch module,
    calibrated and scored like a network.

    Parameters
    ----------
    config : TrainConfig
        ``config.architecture`` is ``{"name": "sklearn-...", **estimator hyper-parameters}``;
        ``config.feature`` one feature spec (``{"name": "summary"}`` for the GTZAN feature set).

    Returns
    -------
    TrainResult
        The model file written and its metrics.

    Raises
    ------
    UsageError
        A list of features, augmentation, or features deeper than ``(features, frames)``.
    """
    from genrekit.training.run import finish_training, prepare_data

    if isinstance(config.feature, list):
        raise UsageError("scikit-learn baselines take one feature, not a list")
    if config.augment:
        raise UsageError("augmentation does not apply to scikit-learn baselines")
    started = time.perf_counter()
    params = {k: v for k, v in config.architecture.items() if k != "name"}
    name = config.architecture["name"]
    estimator = make_estimator(name, params, config.seed)
    data = prepare_data(config, "cpu")
    train = data.train_set()
    input_shape = list(train.inputs[0].shape[1:])
    if len(input_shape) > 2:
        raise UsageError(f"{name}: features of shape {input_shape} are too deep; use vectors or (features, frames)")
    probe = build_module(name, len(data.labels), input_shape=input_shape, n_classes_fitted=1, **_probe_shape(name))
    x = probe.vectors(torch.from_numpy(train.inputs[0])).numpy()
    fit_started = time.perf_counter()
    estimator.fit(x, train.labels(data.labels))
    fit_seconds = time.perf_counter() - fit_started
    module = module_from_estimator(name, estimator, len(data.labels), input_shape)
    logger.info(f"{name}: fitted on {len(x)} segments x {x.shape[1]} features in {fit_seconds:.1f} s")
    training = {"estimator": repr(estimator[-1]), "n_segments": int(len(x)), "history": [], "best_epoch": 0}
    return finish_training(config, module, data, training, started, fit_seconds, "cpu")


def _probe_shape(name: str) -> dict:
    """Dummy shape arguments: enough to build a module whose ``vectors`` pools like the real one."""
    return {
        "sklearn-logreg": {},
        "sklearn-svm": {"n_support": [0], "gamma": 1.0},
        "sklearn-knn": {"n_samples": 0, "n_neighbors": 1},
        "sklearn-gboost": {"n_trees": 0, "n_nodes": 0, "max_depth": 0, "trees_per_iteration": 1},
    }[name]
