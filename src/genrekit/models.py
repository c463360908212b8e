"""Genre classifiers as small ``nn.Module``s, and a registry that builds them from JSON specs.

Every network maps a batch of features to **logits** ``(batch, n_classes)``; softmax (with the
model's calibrated temperature) is applied at inference. Each network is split in two parts:
``embed(x) -> (batch, embedding_dim)`` (the body) and ``head`` (the classifier), so that
:class:`Parallel` can concatenate the bodies of several branches.

Input layouts (without the batch axis):

========================  ===========================  =========================================
name                      input                        typical feature
========================  ===========================  =========================================
``cnn2d``, ``cnn2d-deep``  ``(n_bins, n_frames)``       MFCC or log-mel patch of one segment
``lstm``                  ``(n_features, n_steps)``    MFCC frames, or a sequence of embeddings
``cnn1d``                 ``(n_features, n_steps)``    a sequence of pretrained embeddings
``mlp``                   ``(n_features,)``            a pooled embedding (musicnn penultimate)
``samplecnn``             ``(n_samples,)``             the raw waveform
``parallel``              a list of the above          several features of the same segment
========================  ===========================  =========================================

A spec is a JSON-able dict ``{"name": ..., **constructor kwargs}``;
:func:`build_model` returns the module with its complete spec (``input_shape`` included) in
``module.spec``, which is what a model file records, so ``build_model(module.spec, n_classes)``
rebuilds the same network. Networks on features normalise their input with batch norm, so the
training data's statistics are stored with the weights and raw dB or MFCC values can go in.
"""

from __future__ import annotations

import copy
from typing import Callable, Sequence

import torch
from torch import nn

from .errors import ModelError

__all__ = [
    "CNN2d",
    "Recurrent",
    "CNN1d",
    "MLP",
    "SampleCNN",
    "Parallel",
    "MODELS",
    "build_model",
    "count_parameters",
    "model_summary",
]


def _head(embedding_dim: int, n_classes: int, hidden: int, dropout: float) -> nn.Sequential:
    """Dense ReLU layer with dropout, then the linear output layer (logits)."""
    if hidden <= 0:
        return nn.Sequential(nn.Dropout(dropout), nn.Linear(embedding_dim, n_classes))
    return nn.Sequential(
        nn.Linear(embedding_dim, hidden),
        nn.ReLU(),
        nn.Dropout(dropout),
        nn.Linear(hidden, n_classes),
    )


class _Classifier(nn.Module):
    """Base class: ``forward(x) = head(embed(x))``; subclasses define ``embed``."""

    embedding_dim: int
    head: nn.Module

    def embed(self, x):  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, x):
        return self.head(self.embed(x))


class CNN2d(_Classifier):
    """2D CNN on a time-frequency patch, the "small 3-layer CNN" of the GTZAN studies.

    The input is first normalised per frequency bin (batch norm, so the training data's
    statistics travel with the weights). Each block is conv 3x3 -> batch norm -> ReLU -> 2x2 max
    pooling -> dropout; global average pooling over what is left of frequency and time makes the
    network independent of the number of frames. ``channels=(32, 64, 128)`` gives the classic
    three blocks; ``cnn2d-deep`` uses five.

    Parameters
    ----------
    n_classes : int
    input_shape : (n_bins, n_frames)
        ``n_bins`` sets the input normalisation; any number of frames works.
    channels : sequence of int
        Output channels of each conv block (one block per entry).
    hidden : int
        Width of the dense ReLU layer before the output (0: none).
    dropout : float
        Dropout after each block and before the output layer.
    """

    def __init__(
        self,
        n_classes: int,
        input_shape: Sequence[int],
        channels: Sequence[int] = (32, 64, 128),
        hidden: int = 64,
        dropout: float = 0.3,
    ):
        super().__init__()
        self.input_norm = nn.BatchNorm1d(int(input_shape[0]))
        layers: list[nn.Module] = []
        in_channels = 1
        for out_channels in channels:
            layers += [
                nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
                nn.BatchNorm2d(out_channels),
                nn.ReLU(),
                nn.MaxPool2d(2, ceil_mode=True),
                nn.Dropout(dropout),
            ]
            in_channels = out_channels
        self.blocks = nn.Sequential(*layers)
        self.embedding_dim = in_channels
        self.head = _head(in_channels, n_classes, hidden, dropout)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, n_bins, n_frames)`` -> ``(batch, channels[-1])``."""
        return self.blocks(self.input_norm(x).unsqueeze(1)).mean(dim=(2, 3))


class Recurrent(_Classifier):
    """Bidirectional LSTM over the time axis of a feature sequence.

    Input normalisation per feature (batch norm), two bidirectional LSTM layers (dropout
    between them), the last step's and the mean state concatenated, batch norm, a dense ReLU
    layer and the output layer (logits).

    Parameters
    ----------
    n_classes : int
    input_shape : (n_features, n_steps)
        Feature sequence of one segment, features first (the layout of MFCC and of
        embedding sequences); ``n_features`` sets the LSTM input size.
    hidden_size : int
        LSTM units per direction.
    num_layers : int
    hidden : int
        Width of the dense ReLU layer.
    dropout : float
    """

    def __init__(
        self,
        n_classes: int,
        input_shape: Sequence[int],
        hidden_size: int = 64,
        num_layers: int = 2,
        hidden: int = 64,
        dropout: float = 0.3,
    ):
        super().__init__()
        n_features = int(input_shape[0])
        self.input_norm = nn.BatchNorm1d(n_features)
        self.lstm = nn.LSTM(
            n_features,
            hidden_size,
            num_layers=num_layers,
            batch_first=True,
            bidirectional=True,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        self.embedding_dim = 4 * hidden_size
        self.norm = nn.BatchNorm1d(self.embedding_dim)
        self.head = _head(self.embedding_dim, n_classes, hidden, dropout)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, n_features, n_steps)`` -> ``(batch, 4 * hidden_size)``."""
        outputs, _ = self.lstm(self.input_norm(x).transpose(1, 2))
        # last step of the forward direction has read the whole sequence; the mean keeps
        # what the backward direction saw at every step as well
        pooled = torch.cat([outputs[:, -1], outputs.mean(dim=1)], dim=1)
        return self.norm(pooled)


class CNN1d(_Classifier):
    """1D CNN over a sequence of frames or pretrained embeddings, features as channels.

    Input normalisation per feature (batch norm), blocks of conv (kernel 3) -> batch norm ->
    ReLU -> max pooling (2) -> dropout, then global average and max pooling over time,
    concatenated.

    Parameters
    ----------
    n_classes : int
    input_shape : (n_features, n_steps)
    channels : sequence of int
        Output channels of each block.
    hidden, dropout :
        As in :class:`CNN2d`.
    """

    def __init__(
        self,
        n_classes: int,
        input_shape: Sequence[int],
        channels: Sequence[int] = (128, 128),
        hidden: int = 64,
        dropout: float = 0.3,
    ):
        super().__init__()
        layers: list[nn.Module] = []
        in_channels = int(input_shape[0])
        self.input_norm = nn.BatchNorm1d(in_channels)
        for out_channels in channels:
            layers += [
                nn.Conv1d(in_channels, out_channels, 3, padding=1, bias=False),
                nn.BatchNorm1d(out_channels),
                nn.ReLU(),
                nn.MaxPool1d(2, ceil_mode=True),
                nn.Dropout(dropout),
            ]
            in_channels = out_channels
        self.blocks = nn.Sequential(*layers)
        self.embedding_dim = 2 * in_channels
        self.head = _head(self.embedding_dim, n_classes, hidden, dropout)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, n_features, n_steps)`` -> ``(batch, 2 * channels[-1])``."""
        h = self.blocks(self.input_norm(x))
        return torch.cat([h.mean(dim=2), h.amax(dim=2)], dim=1)


class MLP(_Classifier):
    """Dense network on one vector per segment, e.g. a pooled musicnn embedding.

    Batch norm on the input (embeddings come in arbitrary scales), one dense ReLU layer with
    dropout, the output layer. The default model is ``{"name": "mlp", "hidden": 256,
    "dropout": 0.3}`` on musicnn penultimate features.

    Parameters
    ----------
    n_classes : int
    input_shape : (n_features,)
        Larger shapes are flattened.
    hidden : int
        Width of the dense ReLU layer (0: logistic regression on normalised inputs).
    dropout : float
    """

    def __init__(
        self,
        n_classes: int,
        input_shape: Sequence[int],
        hidden: int = 256,
        dropout: float = 0.3,
    ):
        super().__init__()
        n_features = 1
        for size in input_shape:
            n_features *= int(size)
        self.norm = nn.BatchNorm1d(n_features)
        self.embedding_dim = n_features
        self.head = _head(n_features, n_classes, hidden, dropout)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, *input_shape)`` -> ``(batch, n_features)``."""
        return self.norm(x.flatten(1))


class SampleCNN(_Classifier):
    """Raw-waveform CNN after SampleCNN (Lee et al., 2017): stacks of tiny strided convolutions.

    A strided first conv (kernel and stride ``3``) then blocks of conv (kernel 3) -> batch norm
    -> ReLU -> max pooling (3); each block shrinks time by 3. Global max pooling over what is
    left makes any segment length work; 3-s segments at 22 050 Hz suit ``len(channels) >= 7``.

    Parameters
    ----------
    n_classes : int
    channels : sequence of int
        Channels of the first conv, then of each block.
    hidden, dropout :
        As in :class:`CNN2d`.
    input_shape : (n_samples,), optional
        Recorded in the spec only.
    """

    def __init__(
        self,
        n_classes: int,
        channels: Sequence[int] = (32, 32, 32, 64, 64, 64, 128, 128),
        hidden: int = 64,
        dropout: float = 0.3,
        input_shape: Sequence[int] | None = None,
    ):
        super().__init__()
        first, *rest = channels
        layers: list[nn.Module] = [
            nn.Conv1d(1, first, 3, stride=3, bias=False),
            nn.BatchNorm1d(first),
            nn.ReLU(),
        ]
        in_channels = first
        for out_channels in rest:
            layers += [
                nn.Conv1d(in_channels, out_channels, 3, padding=1, bias=False),
                nn.BatchNorm1d(out_channels),
                nn.ReLU(),
                nn.MaxPool1d(3, ceil_mode=True),
            ]
            in_channels = out_channels
        self.blocks = nn.Sequential(*layers)
        self.embedding_dim = in_channels
        self.head = _head(in_channels, n_classes, hidden, dropout)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, n_samples)`` -> ``(batch, channels[-1])``."""
        return self.blocks(x.unsqueeze(1)).amax(dim=2)


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
        if len(inputs) != len(self.branches):
            raise ModelError(f"parallel model expects {len(self.branches)} inputs, got {len(inputs)}")
        embeddings = [branch.embed(x) for branch, x in zip(self.branches, inputs)]
        return self.head(torch.cat(embeddings, dim=1))


def _baseline_builder(name: str) -> Callable[..., nn.Module]:
    def build(n_classes: int, **kwargs) -> nn.Module:
        from . import baselines  # scikit-learn rebuilds live with their training code

        return baselines.build_module(name, n_classes, **kwargs)

    return build


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
}
for _name in ("sklearn-logreg", "sklearn-svm", "sklearn-knn", "sklearn-gboost"):
    MODELS[_name] = _baseline_builder(_name)


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


def _as_lists(shape):
    if isinstance(shape, (list, tuple, torch.Size)):
        return [_as_lists(item) for item in shape]
    return int(shape)


def count_parameters(module: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters of ``module``."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def model_summary(module: nn.Module) -> str:
    """One line: architecture name and parameter count, e.g. ``cnn2d (93,578 parameters)``."""
    name = getattr(module, "spec", {}).get("name", type(module).__name__)
    return f"{name} ({count_parameters(module):,} parameters)"
