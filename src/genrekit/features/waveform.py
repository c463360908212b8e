"""The raw waveform as a feature, for networks that learn their own front end (``samplecnn``).
"""

from __future__ import annotations

import torch
from torch import nn


class Waveform(nn.Module):
    """The raw waveform as a feature (for ``samplecnn``): ``(batch, samples)`` unchanged.

    Parameters
    ----------
    sr : int, default 22050
        Sample rate in Hz; only records the rate the network expects.
    """

    name = "waveform"

    def __init__(self, sr: int = 22050):
        super().__init__()
        self.sr = int(sr)

    def config(self) -> dict:
        """The constructor's arguments.

        Returns
        -------
        dict
            ``{"sr": int}``.
        """
        return {"sr": self.sr}

    def forward(self, samples: torch.Tensor) -> torch.Tensor:
        """Return the input unchanged.

        Parameters
        ----------
        samples : torch.Tensor
            Audio at ``sr`` Hz, shape ``(batch, samples)``.

        Returns
        -------
        torch.Tensor
            ``samples`` itself.
        """
        return samples
