"""Neural genre classifiers on features: 2-D CNN, recurrent (BiLSTM/GRU), 1-D CNN, MLP and
SampleCNN. Each maps features ``(batch, *input_shape)`` to logits ``(batch, n_classes)`` and
carries its JSON ``spec``.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from genrekit.errors import ModelError


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
        """The last hidden layer's output (what the head classifies).

        Parameters
        ----------
        x : torch.Tensor
            float32 time-frequency patches, shape ``(batch, n_bins, n_frames)``.

        Returns
        -------
        torch.Tensor
            float32, shape ``(batch, channels[-1])``.
        """
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
        """The last hidden layer's output (what the head classifies).

        Parameters
        ----------
        x : torch.Tensor
            float32 feature sequences, shape ``(batch, n_features, n_steps)``.

        Returns
        -------
        torch.Tensor
            float32, shape ``(batch, 4 * hidden_size)``.
        """
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
        """The last hidden layer's output (what the head classifies).

        Parameters
        ----------
        x : torch.Tensor
            float32 feature sequences, shape ``(batch, n_features, n_steps)``.

        Returns
        -------
        torch.Tensor
            float32, shape ``(batch, 2 * channels[-1])``.
        """
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
    input_transform : {None, "logit"}
        ``"logit"``: inputs are probabilities (a musicnn taggram) and go in as
        ``logit(clip(p, 1e-6, 1 - 1e-6))``, which spreads the values near 0 and 1 that carry
        the information.
    """

    TRANSFORMS = (None, "logit")

    def __init__(
        self,
        n_classes: int,
        input_shape: Sequence[int],
        hidden: int = 256,
        dropout: float = 0.3,
        input_transform: str | None = None,
    ):
        super().__init__()
        if input_transform not in self.TRANSFORMS:
            raise ModelError(f"mlp input_transform must be one of {self.TRANSFORMS}, not {input_transform!r}")
        self.input_transform = input_transform
        n_features = 1
        for size in input_shape:
            n_features *= int(size)
        self.norm = nn.BatchNorm1d(n_features)
        self.embedding_dim = n_features
        self.head = _head(n_features, n_classes, hidden, dropout)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The last hidden layer's output (what the head classifies).

        Parameters
        ----------
        x : torch.Tensor
            float32 feature vectors (probabilities with ``input_transform='logit'``), shape ``(batch, *input_shape)``.

        Returns
        -------
        torch.Tensor
            float32, shape ``(batch, n_features)``.
        """
        x = x.flatten(1)
        if self.input_transform == "logit":
            x = torch.logit(x.clamp(1e-6, 1 - 1e-6))
        return self.norm(x)


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
        """The last hidden layer's output (what the head classifies).

        Parameters
        ----------
        x : torch.Tensor
            float32 waveforms in [-1, 1], shape ``(batch, n_samples)``.

        Returns
        -------
        torch.Tensor
            float32, shape ``(batch, channels[-1])``.
        """
        return self.blocks(x.unsqueeze(1)).amax(dim=2)
