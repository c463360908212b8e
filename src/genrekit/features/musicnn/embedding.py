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
        """All log-compressed mel frames of ``samples`` (no cut to 187 frames).

        Parameters
        ----------
        samples : torch.Tensor
            Audio at 16 kHz, float32, shape ``(..., samples)``.

        Returns
        -------
        torch.Tensor
            float32, shape ``(..., frames, 96)``, ``log10(10000 x + 1)`` of the mel power.
        """
        power = self.mel(samples).transpose(-1, -2).clamp(max=FLOAT16_MAX)
        return torch.log10(10000.0 * power.to(torch.float16).to(torch.float32) + 1.0)

    def forward(self, samples: torch.Tensor) -> torch.Tensor:
        """One 187-frame log-mel patch per row, as musicnn takes it.

        Parameters
        ----------
        samples : torch.Tensor
            Audio at 16 kHz, float32, shape ``(batch, samples)``, at least 47 616 samples per row.

        Returns
        -------
        torch.Tensor
            float32, shape ``(batch, 187, 96)``.

        Raises
        ------
        ValueError
            ``samples`` is not two-dimensional or its rows are too short for one patch.
        """
        if samples.ndim != 2:
            raise ValueError(f"expected audio of shape (batch, samples), got {tuple(samples.shape)}")
        if self.mel.frames(samples.shape[-1]) < PATCH_FRAMES:
            need = (PATCH_FRAMES - 1) * HOP_LENGTH
            raise ValueError(f"musicnn needs at least {need} samples at 16 kHz per row, got {samples.shape[-1]}")
        return self.logmel(samples)[:, :PATCH_FRAMES]


def logmel_patches(logmel: torch.Tensor, hop_frames: int = PATCH_FRAMES) -> tuple[torch.Tensor, np.ndarray]:
    """Cut a whole file's log-mel into 187-frame patches like musicnn.

    Patches start every ``hop_frames`` frames while a whole patch fits (musicnn's
    ``batch_data``): 187 for no overlap, `HOP_1S_FRAMES` (61) for musicnn's 1 s
    ``input_overlap``. A file shorter than one patch is padded with zeros (silence), where
    musicnn fails.

    Parameters
    ----------
    logmel : torch.Tensor
        `file_logmel` of a file, shape ``(frames, 96)``.
    hop_frames : int, default 187
        Frames between patch starts (one frame is 16 ms).

    Returns
    -------
    patches : torch.Tensor
        shape ``(n_patches, 187, 96)``.
    starts : np.ndarray
        shape ``(n_patches,)``, patch start times in seconds.

    Raises
    ------
    UsageError
        ``hop_frames`` is less than 1.
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
    """One musicnn vector per 3 s segment (or per log-mel patch): the embedding API.

    Parameters
    ----------
    inputs : np.ndarray or torch.Tensor
        Either audio segments ``(batch, samples)`` at 16 kHz (each row at least 2.976 s; its
        first 187 frames are used, see `MusicnnFrontEnd`) or log-mel patches
        ``(batch, 187, 96)``.
    name : str, default "MSD_musicnn"
        ``"MSD_musicnn"`` or ``"MTT_musicnn"`` (or a ``*_vgg`` model, taggram only).
    kind : str, default "penultimate"
        ``"taggram"`` (50 tag probabilities in [0, 1]), ``"penultimate"`` (200), ``"mean_pool"``
        or ``"max_pool"`` (753).
    batch_size : int, default 64
        Segments per forward pass.

    Returns
    -------
    np.ndarray
        float32, shape ``(batch, dim)``.

    Raises
    ------
    UsageError
        Unknown ``kind`` for the model ``name``.
    ValueError
        ``inputs`` is neither 2-D audio nor 3-D patches.

    Notes
    -----
    The pretrained weights ship with genrekit (no download); the model is loaded once per
    process and kept (see `load_musicnn`).

    Examples
    --------
    Two 3 s segments of noise at 16 kHz:

    >>> import numpy as np
    >>> from genrekit.features.musicnn.embedding import musicnn_embeddings
    >>> segments = 0.1 * np.random.default_rng(0).standard_normal((2, 48000)).astype(np.float32)
    >>> musicnn_embeddings(segments).shape
    (2, 200)
    >>> tags = musicnn_embeddings(segments, kind="taggram")
    >>> tags.shape, bool(((tags >= 0) & (tags <= 1)).all())
    ((2, 50), True)
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

    The network is frozen (no gradients, batch norms in eval mode), so it can sit in front of a
    trainable classifier. Spec: ``{"name": "musicnn", "model": "MSD_musicnn", "layer":
    "penultimate"}`` (see ``genrekit.features.registry.build_feature``).

    Parameters
    ----------
    model : str, default "MSD_musicnn"
        Pretrained musicnn network (see `musicnn_embeddings`).
    layer : str, default "penultimate"
        Output: ``"taggram"`` (50), ``"penultimate"`` (200), ``"mean_pool"`` or ``"max_pool"`` (753).
    tolerance : float
        Passed to `load_musicnn`: filters whose output stays within this of a constant are
        computed as that constant (see :class:`~genrekit.features.musicnn.network.Musicnn`).

    Raises
    ------
    UsageError
        Unknown ``layer`` for ``model``.

    Notes
    -----
    Input ``(batch, samples)`` float32 at 16 kHz (``sr`` attribute), at least 2.976 s; output
    ``(batch, dim)``.

    Examples
    --------
    >>> import torch
    >>> from genrekit.features.musicnn.embedding import MusicnnEmbedding
    >>> feature = MusicnnEmbedding(layer="mean_pool")
    >>> feature(torch.zeros(2, 48000)).shape, feature.dim
    (torch.Size([2, 753]), 753)
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
        """Length of one output vector."""
        return LAYERS[self.layer]

    def config(self) -> dict:
        """The constructor's arguments, so that ``MusicnnEmbedding(**m.config())`` rebuilds ``m``.

        Returns
        -------
        dict
            JSON-able ``{"model", "layer", "tolerance"}``.
        """
        return {"model": self.network.name, "layer": self.layer, "tolerance": self.network.tolerance}

    def train(self, mode: bool = True) -> MusicnnEmbedding:
        """Set training mode like ``nn.Module.train``, but keep the frozen network in eval mode.

        Parameters
        ----------
        mode : bool, default True
            Training mode for the rest of the module.

        Returns
        -------
        MusicnnEmbedding
            ``self``.
        """
        super().train(mode)
        self.network.eval()  # frozen: batch norms keep their running statistics
        return self

    def forward(self, samples: torch.Tensor) -> torch.Tensor:
        """Embed audio windows.

        Parameters
        ----------
        samples : torch.Tensor
            Audio at 16 kHz, float32, shape ``(batch, samples)``, at least 47 616 samples per row.

        Returns
        -------
        torch.Tensor
            float32, shape ``(batch, dim)``.
        """
        with torch.no_grad():
            return self.network(self.frontend(samples))[self.layer]

    def extra_repr(self) -> str:
        """Model and layer, as shown by ``repr(module)``.

        Returns
        -------
        str
            ``"model='MSD_musicnn', layer='penultimate'"``.
        """
        return f"model={self.network.name!r}, layer={self.layer!r}"


def file_logmel(samples: np.ndarray | torch.Tensor, *, chunk_frames: int = 8192) -> torch.Tensor:
    """`MusicnnFrontEnd.logmel` of a whole mono signal, computed in chunks of frames.

    Same frames as one pass (``center=True`` with zero padding), but the STFT never holds
    more than ``chunk_frames`` frames, so hour-long files need memory for the samples and
    the ``(frames, 96)`` result only.

    Parameters
    ----------
    samples : np.ndarray or torch.Tensor
        Mono audio at 16 kHz, shape ``(samples,)``.
    chunk_frames : int, default 8192
        Frames per STFT pass (8192 frames = 131 s).

    Returns
    -------
    torch.Tensor
        float32, shape ``(1 + samples // 256, 96)``.

    Raises
    ------
    ValueError
        ``samples`` is not one-dimensional.
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
