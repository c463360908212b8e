"""Classical estimators (scikit-learn logistic regression, SVM, k-NN, gradient boosting) and
their inference heads as torch modules, so a fitted baseline is stored like any network:
as tensors, never pickled.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import nn

from genrekit.errors import ModelError, UsageError

#: Architecture name -> (scikit-learn class path, default hyper-parameters).
ESTIMATORS = {
    "sklearn-logreg": ("sklearn.linear_model.LogisticRegression", {"C": 1.0, "max_iter": 2000}),
    "sklearn-svm": ("sklearn.svm.SVC", {"C": 10.0, "gamma": "scale", "break_ties": True}),
    "sklearn-knn": ("sklearn.neighbors.KNeighborsClassifier", {"n_neighbors": 5, "weights": "uniform", "algorithm": "brute"}),
    "sklearn-gboost": (
        "sklearn.ensemble.HistGradientBoostingClassifier",
        {"max_iter": 100, "learning_rate": 0.1, "early_stopping": False},
    ),
}


#: Log-probability given to classes absent from the training data (finite, so no NaN appears).
ABSENT_LOGIT = -1e4


def make_estimator(name: str, params: dict | None = None, seed: int = 0):
    """An unfitted ``Pipeline(StandardScaler(), <estimator>)`` with genrekit's defaults and ``params``.

    Parameters
    ----------
    name : str
        A key of `ESTIMATORS`: ``"sklearn-logreg"``, ``"sklearn-svm"``, ``"sklearn-knn"`` or
        ``"sklearn-gboost"``.
    params : dict or None, default None
        Hyper-parameters of the estimator, over genrekit's defaults.
    seed : int, default 0
        ``random_state`` of estimators that take one (unless ``params`` sets it).

    Returns
    -------
    sklearn.pipeline.Pipeline
        Unfitted.

    Raises
    ------
    UsageError
        Unknown ``name`` or parameter, or an option the torch module cannot rebuild (an SVM
        kernel other than RBF, a k-NN metric other than Euclidean).
    """
    from importlib import import_module

    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if name not in ESTIMATORS:
        raise UsageError(f"unknown baseline {name!r} (known: {', '.join(ESTIMATORS)})")
    path, defaults = ESTIMATORS[name]
    module, cls_name = path.rsplit(".", 1)
    cls = getattr(import_module(module), cls_name)
    options = {**defaults, **(params or {})}
    if "random_state" in cls().get_params():
        options.setdefault("random_state", seed)
    if name == "sklearn-svm" and options.get("kernel", "rbf") != "rbf":
        raise UsageError("sklearn-svm supports the RBF kernel only")
    if name == "sklearn-knn" and (options.get("metric", "minkowski") != "minkowski" or options.get("p", 2) != 2):
        raise UsageError("sklearn-knn supports the Euclidean metric only")
    try:
        estimator = cls(**options)
    except TypeError as exc:
        raise UsageError(f"{name}: {exc}") from None
    return make_pipeline(StandardScaler(), estimator)


def module_from_estimator(name: str, pipeline, n_classes: int, input_shape: Sequence[int]) -> nn.Module:
    """Copy a fitted pipeline's arrays into the matching baseline module (with ``.spec``).

    Parameters
    ----------
    name : str
        The architecture name the pipeline was made with (`make_estimator`).
    pipeline : sklearn.pipeline.Pipeline
        Fitted ``StandardScaler`` + estimator.
    n_classes : int
        Number of labels of the model (classes without training data get `ABSENT_LOGIT`).
    input_shape : sequence of int
        Shape of one segment's features.

    Returns
    -------
    nn.Module
        In eval mode; its logits ``(batch, n_classes)`` reproduce the pipeline's decisions.

    Raises
    ------
    ModelError
        A gradient-boosting model with categorical features.
    """
    scaler, estimator = pipeline[0], pipeline[-1]
    classes = np.asarray(estimator.classes_, dtype=np.int64)
    shape = _fitted_shape(name, estimator)
    params = {k: v for k, v in estimator.get_params().items() if _jsonable(v)}
    spec = {"name": name, "input_shape": list(input_shape), "n_classes_fitted": len(classes), "params": params, **shape}
    module = build_module(name, n_classes, **{k: v for k, v in spec.items() if k != "name"})
    state = {
        "mean": torch.from_numpy(scaler.mean_),
        "scale": torch.from_numpy(scaler.scale_),
        "classes": torch.from_numpy(classes),
        **_fitted_arrays(name, estimator),
    }
    module.load_state_dict(state)
    module.spec = spec
    return module.eval()


def _jsonable(value) -> bool:
    return value is None or isinstance(value, (bool, int, float, str))


def _fitted_shape(name: str, estimator) -> dict:
    if name == "sklearn-logreg":
        return {}
    if name == "sklearn-svm":
        return {"n_support": estimator.n_support_.tolist(), "gamma": float(estimator._gamma)}
    if name == "sklearn-knn":
        return {"n_samples": int(estimator.n_samples_fit_), "n_neighbors": int(estimator.n_neighbors),
                "weights": estimator.weights}
    nodes = [tree.nodes for trees in estimator._predictors for tree in trees]
    if any(node["is_categorical"].any() for node in nodes):
        raise ModelError("sklearn-gboost with categorical features cannot be rebuilt")
    return {
        "n_trees": len(nodes),
        "n_nodes": max(len(node) for node in nodes),
        "max_depth": int(max(node["depth"].max() for node in nodes)),
        "trees_per_iteration": int(estimator.n_trees_per_iteration_),
    }


def _fitted_arrays(name: str, estimator) -> dict[str, torch.Tensor]:
    if name == "sklearn-logreg":
        return {"coef": torch.from_numpy(estimator.coef_.astype(np.float64)),
                "intercept": torch.from_numpy(estimator.intercept_.astype(np.float64))}
    if name == "sklearn-svm":
        return {"support_vectors": torch.from_numpy(estimator.support_vectors_.astype(np.float64)),
                "dual_coef": torch.from_numpy(estimator.dual_coef_.astype(np.float64)),
                "intercept": torch.from_numpy(estimator.intercept_.astype(np.float64))}
    if name == "sklearn-knn":
        return {"points": torch.from_numpy(np.asarray(estimator._fit_X, dtype=np.float64)),
                "targets": torch.from_numpy(np.asarray(estimator._y, dtype=np.int64))}
    return _pack_trees(estimator)


def _pack_trees(estimator) -> dict[str, torch.Tensor]:
    """Every tree's nodes in padded ``(n_trees, n_nodes)`` arrays; trees ordered iteration-major."""
    trees = [(k, tree.nodes) for trees in estimator._predictors for k, tree in enumerate(trees)]
    n_nodes = max(len(nodes) for _, nodes in trees)
    packed = {
        "feature": np.zeros((len(trees), n_nodes), np.int64),
        "threshold": np.zeros((len(trees), n_nodes), np.float64),
        "left": np.zeros((len(trees), n_nodes), np.int64),
        "right": np.zeros((len(trees), n_nodes), np.int64),
        "is_leaf": np.ones((len(trees), n_nodes), np.bool_),
        "missing_left": np.zeros((len(trees), n_nodes), np.bool_),
        "value": np.zeros((len(trees), n_nodes), np.float64),
    }
    for t, (_, nodes) in enumerate(trees):
        n = len(nodes)
        packed["feature"][t, :n] = nodes["feature_idx"]
        packed["threshold"][t, :n] = nodes["num_threshold"]
        packed["left"][t, :n] = nodes["left"]
        packed["right"][t, :n] = nodes["right"]
        packed["is_leaf"][t, :n] = nodes["is_leaf"].astype(bool)
        packed["missing_left"][t, :n] = nodes["missing_go_to_left"].astype(bool)
        packed["value"][t, :n] = nodes["value"]
    tensors = {key: torch.from_numpy(value) for key, value in packed.items()}
    tensors["tree_output"] = torch.tensor([k for k, _ in trees], dtype=torch.int64)
    tensors["baseline"] = torch.from_numpy(np.asarray(estimator._baseline_prediction, np.float64).reshape(-1))
    return tensors


class _Baseline(nn.Module):
    """Pool (2-D features), standardise, score; ``forward`` returns logits over all labels.

    Works in float64 like scikit-learn. ``classes`` maps the fitted classes (labels that had
    training data) to output columns; absent labels get :data:`ABSENT_LOGIT`.
    """

    def __init__(self, n_classes: int, input_shape: Sequence[int], n_classes_fitted: int, params: dict | None = None):
        super().__init__()
        self.n_classes = n_classes
        self.pooled = len(input_shape) == 2
        n_features = 2 * int(input_shape[0]) if self.pooled else int(np.prod(input_shape))
        self.register_buffer("mean", torch.zeros(n_features, dtype=torch.float64))
        self.register_buffer("scale", torch.ones(n_features, dtype=torch.float64))
        self.register_buffer("classes", torch.arange(n_classes_fitted, dtype=torch.int64))

    def vectors(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled, unstandardised float64 feature vectors ``(batch, n_features)``."""
        x = x.double()
        if self.pooled:
            return torch.cat([x.mean(dim=-1), x.std(dim=-1, unbiased=False)], dim=1)
        return x.flatten(1)

    def scores(self, z: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = (self.vectors(x) - self.mean) / self.scale
        scores = self.scores(z)
        if len(self.classes) == 2 and scores.shape[1] == 1:  # binary estimators give one score
            scores = torch.cat([torch.zeros_like(scores), scores], dim=1)
        logits = torch.full((len(z), self.n_classes), ABSENT_LOGIT, dtype=torch.float64, device=z.device)
        logits[:, self.classes] = scores
        return logits.float()


class LogisticRegressionModule(_Baseline):
    """``z @ coef.T + intercept``: softmax of these is ``LogisticRegression.predict_proba``.

    Parameters
    ----------
    n_classes : int
        Number of labels (output columns).
    input_shape : sequence of int
        Shape of one segment's features: ``(n_features, n_frames)`` is pooled to the mean and
        standard deviation of each feature, any other shape is flattened.
    n_classes_fitted : int
        Number of labels that had training data.
    params : dict or None
        The estimator's hyper-parameters, recorded only.
    """

    def __init__(self, n_classes, input_shape, n_classes_fitted, params=None):
        super().__init__(n_classes, input_shape, n_classes_fitted, params)
        rows = 1 if n_classes_fitted == 2 else n_classes_fitted
        self.register_buffer("coef", torch.zeros(rows, len(self.mean), dtype=torch.float64))
        self.register_buffer("intercept", torch.zeros(rows, dtype=torch.float64))

    def scores(self, z):
        """Class scores of standardised feature vectors.

        Parameters
        ----------
        z : torch.Tensor
            float64, shape ``(batch, n_features)``, standardised with the fitted mean and scale.

        Returns
        -------
        torch.Tensor
            float64, shape ``(batch, n_classes_fitted)``, the linear decision values.
        """
        return z @ self.coef.T + self.intercept


class SVMModule(_Baseline):
    """RBF SVM: scikit-learn's ``SVC.decision_function`` (one-vs-rest shape) rebuilt from the
    support vectors, dual coefficients and intercepts of the one-vs-one problems.

    Parameters
    ----------
    n_classes : int
        Number of labels (output columns).
    input_shape : sequence of int
        Shape of one segment's features: ``(n_features, n_frames)`` is pooled to the mean and
        standard deviation of each feature, any other shape is flattened.
    n_classes_fitted : int
        Number of labels that had training data.
    n_support : sequence of int
        Support vectors per fitted class.
    gamma : float
        RBF kernel coefficient (of standardised features).
    params : dict or None
        The estimator's hyper-parameters, recorded only.
    """

    def __init__(self, n_classes, input_shape, n_classes_fitted, n_support, gamma, params=None):
        super().__init__(n_classes, input_shape, n_classes_fitted, params)
        self.gamma = float(gamma)
        self.n_support = [int(n) for n in n_support]
        n_sv, k = sum(self.n_support), n_classes_fitted
        self.register_buffer("support_vectors", torch.zeros(n_sv, len(self.mean), dtype=torch.float64))
        self.register_buffer("dual_coef", torch.zeros(k - 1, n_sv, dtype=torch.float64))
        self.register_buffer("intercept", torch.zeros(k * (k - 1) // 2, dtype=torch.float64))

    def kernel(self, z: torch.Tensor) -> torch.Tensor:
        """RBF kernel between ``z`` and the support vectors, ``exp(-gamma |z - sv|^2)``.

        Parameters
        ----------
        z : torch.Tensor
            float64, shape ``(batch, n_features)``, standardised.

        Returns
        -------
        torch.Tensor
            float64, shape ``(batch, n_support_vectors)``.
        """
        sv = self.support_vectors
        distances = (z.square().sum(1, keepdim=True) + sv.square().sum(1) - 2 * z @ sv.T).clamp_min(0)
        return torch.exp(-self.gamma * distances)

    def ovo_decision(self, z: torch.Tensor) -> torch.Tensor:
        """One-vs-one decision values (``SVC(decision_function_shape="ovo")``).

        Parameters
        ----------
        z : torch.Tensor
            float64, shape ``(batch, n_features)``, standardised.

        Returns
        -------
        torch.Tensor
            float64, shape ``(batch, k (k - 1) / 2)`` for pairs ``(i, j)``, ``i < j``, positive
            meaning class ``i``; for two classes ``(batch, 1)``, positive meaning the second class.
        """
        kernel = self.kernel(z)
        k = len(self.n_support)
        if k == 2:
            return kernel @ self.dual_coef[0][:, None] + self.intercept
        bounds = np.cumsum([0, *self.n_support])
        columns = []
        pair = 0
        for i in range(k):
            for j in range(i + 1, k):
                si, sj = slice(bounds[i], bounds[i + 1]), slice(bounds[j], bounds[j + 1])
                value = kernel[:, si] @ self.dual_coef[j - 1, si] + kernel[:, sj] @ self.dual_coef[i, sj]
                columns.append(value + self.intercept[pair])
                pair += 1
        return torch.stack(columns, dim=1)

    def scores(self, z):
        """Class scores of standardised feature vectors.

        Parameters
        ----------
        z : torch.Tensor
            float64, shape ``(batch, n_features)``, standardised with the fitted mean and scale.

        Returns
        -------
        torch.Tensor
            float64, shape ``(batch, n_classes_fitted)``, one-vs-rest decision values (``(batch, 1)`` for two classes).
        """
        decision = self.ovo_decision(z)
        if len(self.n_support) == 2:
            return decision
        return ovr_decision(decision, len(self.n_support))


def ovr_decision(ovo: torch.Tensor, n_classes: int) -> torch.Tensor:
    """scikit-learn's one-vs-one to one-vs-rest transform.

    Votes plus confidences squashed into (-1/3, 1/3), so votes decide and confidences only
    break ties.

    Parameters
    ----------
    ovo : torch.Tensor
        One-vs-one decision values, shape ``(batch, n_classes (n_classes - 1) / 2)``
        (`SVMModule.ovo_decision`).
    n_classes : int
        Number of classes.

    Returns
    -------
    torch.Tensor
        Shape ``(batch, n_classes)``, same dtype as ``ovo``.
    """
    votes = torch.zeros(len(ovo), n_classes, dtype=ovo.dtype, device=ovo.device)
    confidence = torch.zeros_like(votes)
    pair = 0
    for i in range(n_classes):
        for j in range(i + 1, n_classes):
            value = ovo[:, pair]
            confidence[:, i] += value
            confidence[:, j] -= value
            votes[:, i] += (value >= 0).to(ovo.dtype)
            votes[:, j] += (value < 0).to(ovo.dtype)
            pair += 1
    return votes + confidence / (3 * (confidence.abs() + 1))


class KNNModule(_Baseline):
    """k nearest training points (Euclidean); logits are ``log`` of the (distance-weighted) vote shares.

    Parameters
    ----------
    n_classes : int
        Number of labels (output columns).
    input_shape : sequence of int
        Shape of one segment's features: ``(n_features, n_frames)`` is pooled to the mean and
        standard deviation of each feature, any other shape is flattened.
    n_classes_fitted : int
        Number of labels that had training data.
    n_samples : int
        Number of training points.
    n_neighbors : int
        k.
    weights : {"uniform", "distance"}, default "uniform"
        Vote weights, as scikit-learn's ``KNeighborsClassifier``.
    params : dict or None
        The estimator's hyper-parameters, recorded only.
    """

    def __init__(self, n_classes, input_shape, n_classes_fitted, n_samples, n_neighbors, weights="uniform", params=None):
        super().__init__(n_classes, input_shape, n_classes_fitted, params)
        if weights not in ("uniform", "distance"):
            raise ModelError(f"sklearn-knn: weights must be uniform or distance, not {weights!r}")
        self.n_neighbors, self.weights = int(n_neighbors), weights
        self.register_buffer("points", torch.zeros(n_samples, len(self.mean), dtype=torch.float64))
        self.register_buffer("targets", torch.zeros(n_samples, dtype=torch.int64))

    def scores(self, z):
        """Class scores of standardised feature vectors.

        Parameters
        ----------
        z : torch.Tensor
            float64, shape ``(batch, n_features)``, standardised with the fitted mean and scale.

        Returns
        -------
        torch.Tensor
            float64, shape ``(batch, n_classes_fitted)``, log vote shares (floored at 1e-12).
        """
        squared = (z.square().sum(1, keepdim=True) + self.points.square().sum(1) - 2 * z @ self.points.T).clamp_min(0)
        nearest_squared, index = torch.topk(squared, self.n_neighbors, dim=1, largest=False)
        if self.weights == "uniform":
            weight = torch.ones_like(nearest_squared)
        else:
            distance = nearest_squared.sqrt()
            exact = distance == 0
            # scikit-learn: a query equal to training points takes only their votes
            weight = torch.where(exact.any(1, keepdim=True), exact.double(), 1 / distance.clamp_min(1e-300))
        votes = torch.zeros(len(z), len(self.classes), dtype=torch.float64, device=z.device)
        votes.scatter_add_(1, self.targets[index], weight)
        shares = votes / votes.sum(1, keepdim=True)
        return torch.log(shares.clamp_min(1e-12))


class GradientBoostingModule(_Baseline):
    """Histogram gradient boosting: walk every tree, add the leaf values to the baseline score.

    Parameters
    ----------
    n_classes : int
        Number of labels (output columns).
    input_shape : sequence of int
        Shape of one segment's features: ``(n_features, n_frames)`` is pooled to the mean and
        standard deviation of each feature, any other shape is flattened.
    n_classes_fitted : int
        Number of labels that had training data.
    n_trees, n_nodes : int
        Number of trees and nodes of the largest tree (the packed arrays' shape).
    max_depth : int
        Depth of the deepest tree (steps of the walk).
    trees_per_iteration : int
        Trees per boosting iteration (1 for two classes, else one per class).
    params : dict or None
        The estimator's hyper-parameters, recorded only.
    """

    def __init__(self, n_classes, input_shape, n_classes_fitted, n_trees, n_nodes, max_depth,
                 trees_per_iteration, params=None):
        super().__init__(n_classes, input_shape, n_classes_fitted, params)
        self.max_depth = int(max_depth)
        self.trees_per_iteration = int(trees_per_iteration)
        shape = (int(n_trees), int(n_nodes))
        for key, dtype in (("feature", torch.int64), ("left", torch.int64), ("right", torch.int64),
                           ("threshold", torch.float64), ("value", torch.float64),
                           ("is_leaf", torch.bool), ("missing_left", torch.bool)):
            self.register_buffer(key, torch.zeros(shape, dtype=dtype))
        self.register_buffer("tree_output", torch.zeros(shape[0], dtype=torch.int64))
        self.register_buffer("baseline", torch.zeros(self.trees_per_iteration, dtype=torch.float64))

    def scores(self, z):
        """Class scores of standardised feature vectors.

        Parameters
        ----------
        z : torch.Tensor
            float64, shape ``(batch, n_features)``, standardised with the fitted mean and scale.

        Returns
        -------
        torch.Tensor
            float64, shape ``(batch, n_classes_fitted)``, raw boosting scores (``(batch, 1)`` for two classes).
        """
        batch, n_trees = len(z), self.feature.shape[0]
        trees = torch.arange(n_trees, device=z.device).expand(batch, n_trees)
        node = torch.zeros(batch, n_trees, dtype=torch.int64, device=z.device)
        for _ in range(self.max_depth):
            leaf = self.is_leaf[trees, node]
            values = z.gather(1, self.feature[trees, node])
            go_left = torch.where(values.isnan(), self.missing_left[trees, node], values <= self.threshold[trees, node])
            child = torch.where(go_left, self.left[trees, node], self.right[trees, node])
            node = torch.where(leaf, node, child)
        contributions = self.value[trees, node]
        raw = self.baseline.expand(batch, -1).clone()
        raw.index_add_(1, self.tree_output, contributions)
        return raw


_MODULES = {
    "sklearn-logreg": LogisticRegressionModule,
    "sklearn-svm": SVMModule,
    "sklearn-knn": KNNModule,
    "sklearn-gboost": GradientBoostingModule,
}


def build_module(name: str, n_classes: int, **spec) -> nn.Module:
    """Empty baseline module of the shapes in ``spec`` (fill it with ``load_state_dict``).

    Called by :func:`genrekit.models.build_model` for ``sklearn-*`` architecture names.

    Parameters
    ----------
    name : str
        ``"sklearn-logreg"``, ``"sklearn-svm"``, ``"sklearn-knn"`` or ``"sklearn-gboost"``.
    n_classes : int
        Number of labels.
    **spec
        The architecture spec that `module_from_estimator` wrote (``input_shape``,
        ``n_classes_fitted`` and the estimator's shapes).

    Returns
    -------
    nn.Module
        The module with zero buffers.

    Raises
    ------
    ModelError
        The spec lacks a key or has an unexpected one.
    """
    if "input_shape" not in spec or "n_classes_fitted" not in spec:
        raise ModelError(f"{name}: a fitted baseline's spec needs input_shape and n_classes_fitted; "
                         "train it with genrekit train")
    try:
        return _MODULES[name](n_classes, **spec)
    except TypeError as exc:
        raise ModelError(f"architecture {name!r}: {exc}") from None
