"""The network registry: spec names -> constructors (:data:`MODELS`), :func:`build_model` from a
JSON spec, the multi-input ``parallel`` network, and running a network over feature arrays.
"""

from __future__ import annotations

import copy
from functools import partial
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from genrekit.errors import ModelError
from genrekit.models.classical import build_module
from genrekit.models.networks import (
    MLP,
    CNN1d,
    CNN2d,
    Recurrent,
    SampleCNN,
    _Classifier,
    _head,
)


class Parallel(nn.Module):
    """Several inputs at once: each through its own branch, concatenated before the classifier.

    Parameters
    ----------
    n_classes : int
    branches : list of spec dicts
        One architecture spec per input, in the order of the inputs (and of the model's feature
        spec list); only their bodies are used.
    input_shape : list of shapes
        One input shape per branch.
    hidden, dropout :
        Dense ReLU layer of the shared classifier.
    """

    def __init__(
        self,
        n_classes: int,
        branches: Sequence[dict],
        input_shape: Sequence[Sequence[int]],
        hidden: int = 128,
        dropout: float = 0.3,
    ):
        super().__init__()
        if len(branches) != len(input_shape):
            raise ModelError(
                f"parallel model: {len(branches)} branches but {len(input_shape)} input shapes"
            )
        built = [build_model(spec, n_classes, shape) for spec, shape in zip(branches, input_shape)]
        for module in built:
            if not isinstance(module, _Classifier):
                raise ModelError(f"parallel model: {module.spec['name']!r} cannot be a branch")
            module.head = nn.Identity()  # only the body is used
        self.branches = nn.ModuleList(built)
        self.branch_specs = [module.spec for module in built]
        self.embedding_dim = sum(module.embedding_dim for module in built)
        self.head = _head(self.embedding_dim, n_classes, hidden, dropout)

    def forward(self, inputs: Sequence[torch.Tensor]) -> torch.Tensor:
        """Logits of several inputs at once.

        Parameters
        ----------
        inputs : sequence of torch.Tensor
            One feature batch per branch, each ``(batch, *input_shape[i])``.

        Returns
        -------
        torch.Tensor
            Logits, float32, shape ``(batch, n_classes)``.

        Raises
        ------
        ModelError
            The number of inputs differs from the number of branches.
        """
        if len(inputs) != len(self.branches):
            raise ModelError(f"parallel model expects {len(self.branches)} inputs, got {len(inputs)}")
        embeddings = [branch.embed(x) for branch, x in zip(self.branches, inputs)]
        return self.head(torch.cat(embeddings, dim=1))


#: Registry: spec name -> constructor ``(n_classes, **kwargs)``.
MODELS: dict[str, Callable[..., nn.Module]] = {
    "cnn2d": CNN2d,
    "cnn2d-deep": lambda n_classes, **kw: CNN2d(
        n_classes, **{"channels": (32, 64, 128, 256, 256), "hidden": 128, **kw}
    ),
    "lstm": Recurrent,
    "cnn1d": CNN1d,
    "mlp": MLP,
    "samplecnn": SampleCNN,
    "parallel": Parallel,
    "sklearn-logreg": partial(build_module, "sklearn-logreg"),
    "sklearn-svm": partial(build_module, "sklearn-svm"),
    "sklearn-knn": partial(build_module, "sklearn-knn"),
    "sklearn-gboost": partial(build_module, "sklearn-gboost"),
}


def build_model(
    spec: dict, n_classes: int, input_shape: Sequence[int] | Sequence[Sequence[int]] | None = None
) -> nn.Module:
    """Build a network from its JSON spec.

    Parameters
    ----------
    spec : dict
        ``{"name": <one of MODELS>, **constructor kwargs}``, e.g.
        ``{"name": "mlp", "hidden": 256, "dropout": 0.3}``.
    n_classes : int
        Number of outputs (logits).
    input_shape : tuple of int, or list of them for ``parallel``, optional
        Shape of one example without the batch axis; overrides ``spec["input_shape"]``.
        Needed by models whose layer sizes depend on it (``mlp``, ``lstm``, ``cnn1d``).

    Returns
    -------
    nn.Module
        The network in training mode, with ``module.spec`` the complete spec (defaults are not
        filled in, but ``input_shape`` is) so that ``build_model(module.spec, n_classes)``
        rebuilds it.

    Raises
    ------
    ModelError
        Unknown name, wrong or missing keyword arguments.
    """
    if not isinstance(spec, dict) or "name" not in spec:
        raise ModelError(f"architecture spec must be a dict with a 'name', got {spec!r}")
    spec = copy.deepcopy(spec)
    name = spec.pop("name")
    if name not in MODELS:
        raise ModelError(f"unknown architecture {name!r} (known: {', '.join(sorted(MODELS))})")
    if input_shape is not None:
        spec["input_shape"] = _as_lists(input_shape)
    try:
        module = MODELS[name](n_classes, **spec)
    except TypeError as exc:
        raise ModelError(f"architecture {name!r}: {exc}") from None
    module.spec = {"name": name, **spec}
    return module


def state_shapes(spec: dict, n_classes: int) -> dict[str, tuple[int, ...]]:
    """The tensor shapes of ``build_model(spec, n_classes)``, without allocating it.

    The network is built on PyTorch's meta device: no memory is allocated, so a spec asking for
    1e12 units is checked in microseconds.

    Parameters
    ----------
    spec : dict
        Architecture spec, as :func:`build_model` takes it.
    n_classes : int
        Number of outputs.

    Returns
    -------
    dict of str to tuple of int
        ``{state_dict key: shape}``.

    Raises
    ------
    ModelError
        As :func:`build_model`.
    """
    with torch.device("meta"):
        module = build_model(spec, n_classes)
    return {name: tuple(tensor.shape) for name, tensor in module.state_dict().items()}


def _as_lists(shape):
    if isinstance(shape, (list, tuple, torch.Size)):
        return [_as_lists(item) for item in shape]
    return int(shape)


def count_parameters(module: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters of ``module``.

    Parameters
    ----------
    module : nn.Module
    trainable_only : bool, default True
        Count only parameters with ``requires_grad`` (frozen front ends such as musicnn are left out).

    Returns
    -------
    int
    """
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def model_summary(module: nn.Module) -> str:
    """One line: architecture name and parameter count.

    Parameters
    ----------
    module : nn.Module
        A network from :func:`build_model` (its ``spec`` names it) or any module.

    Returns
    -------
    str
        E.g. ``"cnn2d (93,578 parameters)"``.

    Examples
    --------
    >>> import torch
    >>> _ = torch.manual_seed(0)
    >>> model_summary(build_model({"name": "mlp", "hidden": 16}, n_classes=10, input_shape=[50]))
    'mlp (1,086 parameters)'
    """
    name = getattr(module, "spec", {}).get("name", type(module).__name__)
    return f"{name} ({count_parameters(module):,} parameters)"


@torch.no_grad()
def predict_logits(network: nn.Module, inputs: Sequence[np.ndarray], batch_size: int = 64,
                   device: str | torch.device = "cpu") -> torch.Tensor:
    """Logits of ``network`` in eval mode on feature arrays, batch by batch.

    Parameters
    ----------
    network : nn.Module
        A network from :func:`build_model` (a ``parallel`` one takes several inputs).
    inputs : sequence of np.ndarray
        One array per input, each ``(n, *input_shape)``.
    batch_size : int, default 64
        Examples per forward pass.
    device : str or torch.device, default "cpu"
        Where the network runs.

    Returns
    -------
    torch.Tensor
        float32 on the CPU, shape ``(n, n_classes)``.
    """
    network.eval()
    multi = getattr(network, "spec", {}).get("name") == "parallel"
    n = len(inputs[0])
    outputs = []
    for first in range(0, n, max(batch_size, 1)):
        batch = [torch.as_tensor(x[first:first + batch_size]).to(device) for x in inputs]
        outputs.append(network(batch if multi else batch[0]).float().cpu())
    return torch.cat(outputs) if outputs else torch.zeros(0, 0)
