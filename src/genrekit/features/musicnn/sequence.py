"""Sequences of pretrained embeddings as a feature: one musicnn vector per patch of a long segment.

:class:`genrekit.features.musicnn.embedding.MusicnnEmbedding` turns a 3 s segment into one vector. Sequence models
(``cnn1d``, ``lstm`` in :mod:`genrekit.models`) want several vectors in time order instead:
:class:`MusicnnSequence` cuts a longer segment (say 10 s) into musicnn's 3 s patches every
``patch_hop`` seconds and returns their embeddings as ``(batch, dim, n_patches)``, features first
like MFCC frames. Spec::

    {"name": "musicnn-sequence", "model": "MSD_musicnn", "layer": "penultimate", "patch_hop": 1.0}
"""

from __future__ import annotations

import torch

from genrekit.errors import UsageError
from genrekit.features.musicnn.embedding import (
    HOP_LENGTH,
    SAMPLE_RATE,
    MusicnnEmbedding,
)
from genrekit.features.musicnn.network import (
    CONSTANT_FILTER_TOLERANCE,
    N_MELS,
    PATCH_FRAMES,
)

__all__ = ["MusicnnSequence"]


class MusicnnSequence(MusicnnEmbedding):
    """musicnn embeddings of the 3 s patches of a segment, in time order.

    Parameters
    ----------
    model : str
        ``"MSD_musicnn"`` or ``"MTT_musicnn"``.
    layer : str
        ``"penultimate"`` (200), ``"mean_pool"``, ``"max_pool"`` (753) or ``"taggram"`` (50).
    patch_hop : float
        Seconds between patch starts (1.0 is musicnn's own overlap; 3.0 gives disjoint patches).
        A hop of ``h`` seconds is ``int(h * 16000 / 256)`` log-mel frames (62 for 1 s, 187 for 3 s).
    tolerance : float
        See :class:`genrekit.features.musicnn.network.Musicnn`.

    Input ``(batch, samples)`` float32 at 16 kHz, at least 2.976 s; output ``(batch, dim,
    n_patches)`` with ``n_patches = 1 + (frames - 187) // hop_frames`` for the segment's
    ``frames = 1 + samples // 256`` log-mel frames. The network stays frozen.
    """

    name = "musicnn-sequence"

    def __init__(self, model: str = "MSD_musicnn", layer: str = "penultimate", patch_hop: float = 1.0,
                 tolerance: float = CONSTANT_FILTER_TOLERANCE):
        super().__init__(model, layer, tolerance)
        self.patch_hop = float(patch_hop)
        self.hop_frames = int(self.patch_hop * SAMPLE_RATE / HOP_LENGTH)
        if self.hop_frames < 1:
            raise UsageError(f"musicnn-sequence patch_hop must be at least {HOP_LENGTH / SAMPLE_RATE:.3f} s, "
                             f"not {patch_hop}")

    def config(self) -> dict:
        """The constructor's arguments, so that ``MusicnnSequence(**m.config())`` rebuilds ``m``.

        Returns
        -------
        dict
            JSON-able ``{"model", "layer", "tolerance", "patch_hop"}``.
        """
        return {**super().config(), "patch_hop": self.patch_hop}

    def forward(self, samples: torch.Tensor) -> torch.Tensor:
        """Embed each 3 s patch of each segment.

        Parameters
        ----------
        samples : torch.Tensor
            Audio at 16 kHz, float32, shape ``(batch, samples)``, at least 47 616 samples per row.

        Returns
        -------
        torch.Tensor
            float32, shape ``(batch, dim, n_patches)``.

        Raises
        ------
        ValueError
            ``samples`` is not two-dimensional or its rows are shorter than one patch.
        """
        if samples.ndim != 2:
            raise ValueError(f"expected audio of shape (batch, samples), got {tuple(samples.shape)}")
        with torch.no_grad():
            logmel = self.frontend.logmel(samples)  # (batch, frames, 96)
            if logmel.shape[1] < PATCH_FRAMES:
                need = (PATCH_FRAMES - 1) * HOP_LENGTH
                raise ValueError(f"musicnn needs at least {need} samples at 16 kHz per row, got {samples.shape[-1]}")
            patches = logmel.unfold(1, PATCH_FRAMES, self.hop_frames)  # (batch, n, 96, 187)
            batch, n_patches = patches.shape[:2]
            flat = patches.transpose(2, 3).reshape(batch * n_patches, PATCH_FRAMES, N_MELS)
            vectors = self.network(flat)[self.layer]
            return vectors.reshape(batch, n_patches, -1).transpose(1, 2).contiguous()

    def extra_repr(self) -> str:
        """Model, layer and patch hop, as shown by ``repr(module)``.

        Returns
        -------
        str
            ``"model='MSD_musicnn', layer='penultimate', patch_hop=1"``.
        """
        return f"{super().extra_repr()}, patch_hop={self.patch_hop:g}"
