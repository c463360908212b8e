"""musicnn on audio: its front end (16 kHz log-mel patches of 3 s), and embeddings or taggrams
of audio windows as a feature module (:class:`MusicnnEmbedding`, spec ``{"name": "musicnn"}``).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from genrekit.errors import UsageError
from genrekit.features.musicnn.network import (
    CONSTANT_FILTER_TOLERANCE,
    FLOAT16_MAX,
    LAYERS,
    N_MELS,
    PATCH_FRAMES,
)
from genrekit.features.musicnn.weights import _cached_model, load_musicnn

SAMPLE_RATE = 16000


N_FFT = 512


HOP_LENGTH = 256




class MusicnnFrontEnd(nn.Module):
    """musicnn's input: 16 kHz audio to log-compressed mel frames, one 3 s patch per row.

    Mel power spectrogram (``n_fft`` 512, hop 256, 96 Slaney mel bands, ``center=True``
    with zero padding, as librosa 0.11), rounded to float16 exactly as musicnn does, then
    ``log10(10000 x + 1)`` computed in float32 (musicnn computes it in float16, which
    overflows to inf, hence NaN tags, for loud music). Powers beyond the float16 range, which
    audio within [-1, 1] never reaches, are clipped to it instead of becoming inf.

    Parameters
    ----------
    center : bool
        Frames centred on multiples of the hop (musicnn); False is for callers that pad the
        signal themselves (`file_logmel`).

    Input ``(batch, samples)`` float32 at 16 kHz, at least 47 616 samples (2.976 s); output
    ``(batch, 187, 96)``: the first 187 frames of each row, as musicnn takes them. A genrekit
    3 s segment (48 000 samples) gives 188 frames with ``center=True``; the last is dropped.
    """

    sr = SAMPLE_RATE

    def __init__(self, center: bool = True):
        super().__init__()
        from genrekit.features.spectral import MelSpectrogram

        self.mel = MelSpectrogram(sr=SAMPLE_RATE, n_fft=N_FFT, hop_length=HOP_LENGTH, n_mels=N_MELS, center=center)

    def logmel(self, samples: torch.Tensor) -> torch.Tensor:
        """All frames: ``(..., samples)`` -> ``(..., frames, 96)`` log-compressed mel."""
        power = self.mel(samples).transpose(-1, -2).clamp(max=FLOAT16_MAX)
        return torch.log10(10000.0 * power.to(torch.float16).to(torch.float32) + 1.0)

    def forward(self, samples: torch.Tensor) -> torch.Tensor:
        if samples.ndim != 2:
            raise ValueError(f"expected audio of shape (batch, samples), got {tuple(samples.shape)}")
        if self.mel.frames(samples.shape[-1]) < PATCH_FRAMES:
            need = (PATCH_FRAMES - 1) * HOP_LENGTH
            raise ValueError(f"musicnn needs at least {need} samples at 16 kHz per row, got {samples.shape[-1]}")
        return self.logmel(samples)[:, :PATCH_FRAMES]


def logmel_patches(logmel: torch.Tensor, hop_frames: int = PATCH_FRAMES) -> tuple[torch.Tensor, np.ndarray]:
    """Cut a whole file's log-mel ``(frames, 96)`` into 187-frame patches like musicnn.

    Patches start every ``hop_frames`` frames while a whole patch fits (musicnn's
    ``batch_data``): 187 for no overlap, `HOP_1S_FRAMES` (61) for musicnn's 1 s
    ``input_overlap``. A file shorter than one patch is padded with zeros (silence), where
    musicnn fails.

    Returns
    -------
    patches : Tensor, shape (n_patches, 187, 96)
    starts : ndarray, shape (n_patches,)
        Patch start times in seconds.
    """
    if hop_frames < 1:
        raise UsageError(f"patch hop must be at least one frame, not {hop_frames}")
    if logmel.shape[0] < PATCH_FRAMES:
        logmel = F.pad(logmel, (0, 0, 0, PATCH_FRAMES - logmel.shape[0]))
    first_frames = np.arange(0, logmel.shape[0] - PATCH_FRAMES + 1, hop_frames)
    patches = logmel.unfold(0, PATCH_FRAMES, hop_frames).transpose(1, 2)
    return patches[: len(first_frames)], first_frames * HOP_LENGTH / SAMPLE_RATE


def _check_layer(layer: str, name: str) -> str:
    layers = ["taggram"] if name.endswith("_vgg") else list(LAYERS)
    if layer not in layers:
        raise UsageError(f"unknown {name} layer {layer!r}; expected one of {', '.join(layers)}")
    return layer


def musicnn_embeddings(
    inputs: np.ndarray | torch.Tensor,
    name: str = "MSD_musicnn",
    kind: str = "penultimate",
    *,
    batch_size: int = 64,
) -> np.ndarray:
    """One musicnn vector per 3 s segment (or per log-mel patch).

    Parameters
    ----------
    inputs : array or Tensor
        Either audio segments ``(batch, samples)`` at 16 kHz (each row at least 2.976 s; its
        first 187 frames are used, see `MusicnnFrontEnd`) or log-mel patches
        ``(batch, 187, 96)``.
    name : str
        ``"MSD_musicnn"`` or ``"MTT_musicnn"`` (or a ``*_vgg`` model, taggram only).
    kind : str
        ``"taggram"`` (50 tag probabilities), ``"penultimate"`` (200), ``"mean_pool"`` or
        ``"max_pool"`` (753).
    batch_size : int
        Segments per forward pass.

    Returns
    -------
    ndarray, float32, shape (batch, dim)

    Notes
    -----
    The model is loaded once per process and kept (see `load_musicnn`).
    """
    _check_layer(kind, name)
    model = _cached_model(name)
    inputs = torch.as_tensor(np.asarray(inputs, dtype=np.float32))
    is_patches = inputs.ndim == 3
    if inputs.ndim not in (2, 3):
        raise ValueError(f"expected (batch, samples) audio or (batch, 187, 96) patches, got {tuple(inputs.shape)}")
    frontend = None if is_patches else MusicnnFrontEnd()
    outputs = []
    with torch.inference_mode():
        for batch in inputs.split(batch_size):
            patches = batch if frontend is None else frontend(batch)
            outputs.append(model(patches)[kind])
    if not outputs:
        return np.zeros((0, LAYERS[kind]), np.float32)
    return torch.cat(outputs).numpy()


class MusicnnEmbedding(nn.Module):
    """A pretrained musicnn layer as a genrekit feature: 3 s of 16 kHz audio -> one vector.

    Input ``(batch, samples)`` float32 at 16 kHz (``sr`` attribute), at least 2.976 s; output
    ``(batch, dim)``: 50 for ``"taggram"``, 200 for ``"penultimate"``, 753 for ``"mean_pool"``
    and ``"max_pool"``. The network is frozen (no gradients, batch norms in eval mode), so it
    can sit in front of a trainable classifier. Spec: ``{"name": "musicnn", "model":
    "MSD_musicnn", "layer": "penultimate"}`` (see ``genrekit.features.registry.build_feature``).
    """

    name = "musicnn"
    sr = SAMPLE_RATE

    def __init__(self, model: str = "MSD_musicnn", layer: str = "penultimate", tolerance: float = CONSTANT_FILTER_TOLERANCE):
        super().__init__()
        self.layer = _check_layer(layer, model)
        self.frontend = MusicnnFrontEnd()
        self.network = load_musicnn(model, tolerance=tolerance).requires_grad_(False)

    @property
    def dim(self) -> int:
        return LAYERS[self.layer]

    def config(self) -> dict:
        """Constructor arguments, JSON-able."""
        return {"model": self.network.name, "layer": self.layer, "tolerance": self.network.tolerance}

    def train(self, mode: bool = True) -> MusicnnEmbedding:
        super().train(mode)
        self.network.eval()  # frozen: batch norms keep their running statistics
        return self

    def forward(self, samples: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.network(self.frontend(samples))[self.layer]

    def extra_repr(self) -> str:
        return f"model={self.network.name!r}, layer={self.layer!r}"


def file_logmel(samples: np.ndarray | torch.Tensor, *, chunk_frames: int = 8192) -> torch.Tensor:
    """`MusicnnFrontEnd.logmel` of a whole mono signal, computed in chunks of frames.

    Same frames as one pass (``center=True`` with zero padding), but the STFT never holds
    more than ``chunk_frames`` frames, so hour-long files need memory for the samples and
    the ``(frames, 96)`` result only.
    """
    samples = torch.as_tensor(np.asarray(samples, dtype=np.float32))
    if samples.ndim != 1:
        raise ValueError(f"expected mono audio of shape (samples,), got {tuple(samples.shape)}")
    frontend = MusicnnFrontEnd(center=False)
    padded = F.pad(samples, (N_FFT // 2, N_FFT // 2))  # the centring, once for the whole file
    n_frames = 1 + samples.shape[0] // HOP_LENGTH
    chunks = []
    for first in range(0, n_frames, chunk_frames):
        last = min(n_frames, first + chunk_frames)
        chunks.append(frontend.logmel(padded[first * HOP_LENGTH : (last - 1) * HOP_LENGTH + N_FFT]))
    return torch.cat(chunks)
