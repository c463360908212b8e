"""The raw waveform as a feature, for networks that learn their own front end (``samplecnn``).
"""

from __future__ import annotations

import torch
from torch import nn


class Waveform(nn.Module):
    """The raw waveform as a feature (for ``samplecnn``): ``(batch, samples)`` unchanged.

    Spec ``{"name": "waveform", "sr": 22050}``; ``sr`` only records the rate the network expects.
    """

    name = "waveform"

    def __init__(self, sr: int = 22050):
        super().__init__()
        self.sr = int(sr)

    def config(self) -> dict:
        return {"sr": self.sr}

    def forward(self, samples: torch.Tensor) -> torch.Tensor:
        return samples
