"""Sample rates: the range genrekit reads, and the one resampler (soxr, streaming) that files,
arrays and streams all go through, cleaning each block first (:func:`.clean.clean_samples`)."""

from __future__ import annotations

from typing import Iterable, Iterator

import numpy as np
import soxr

from genrekit.audio.clean import SampleRepairs, clean_samples
from genrekit.errors import UsageError

__all__ = ["MAX_SAMPLE_RATE", "MIN_SAMPLE_RATE", "RESAMPLE_QUALITY", "check_sample_rate", "convert_blocks",
           "resample_stream"]


RESAMPLE_QUALITY = "HQ"


#: Sample rates genrekit reads, in Hz, for files and arrays alike. Below 2 kHz nothing above
#: 1 kHz survives, too little to tell music by, and resampling up to a model's rate would cost
#: thousands of output samples per input sample (a 1 Hz file took minutes and gigabytes);
#: 768 kHz is the highest rate studio and DSD-to-PCM converters write.
MIN_SAMPLE_RATE = 2000
MAX_SAMPLE_RATE = 768000


def check_sample_rate(sr: int, what: str = "sample rate") -> int:
    """``sr`` when it lies within [:data:`MIN_SAMPLE_RATE`, :data:`MAX_SAMPLE_RATE`] Hz.

    Parameters
    ----------
    sr : int
        A sample rate in Hz.
    what : str, default "sample rate"
        What to name in the error message.

    Returns
    -------
    int

    Raises
    ------
    UsageError
        ``sr`` is outside the range.
    """
    if not MIN_SAMPLE_RATE <= sr <= MAX_SAMPLE_RATE:
        raise UsageError(f"{what} {sr} Hz is outside the rates genrekit reads "
                         f"({MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz)")
    return int(sr)


def resample_stream(blocks: Iterable[np.ndarray], native_sr: int, sr: int,
                    repairs: SampleRepairs | None = None) -> Iterator[np.ndarray]:
    """Clean and resample consecutive mono blocks from ``native_sr`` to ``sr`` Hz, as a file's
    samples are (the result does not depend on how the samples are cut into blocks).

    Parameters
    ----------
    blocks : iterable of np.ndarray
        Mono float blocks, shape ``(n_i,)``.
    native_sr, sr : int
        Their rate and the wanted rate, in Hz.
    repairs : SampleRepairs, optional
        Counts of repaired samples are added to it.

    Yields
    ------
    np.ndarray
        float32 blocks, shape ``(m_i,)``, at ``sr`` Hz.
    """
    for block in convert_blocks((block[:, None] for block in blocks), native_sr, sr, 1, True, repairs):
        yield block[:, 0]


def convert_blocks(blocks, native_sr: int, sr: int, channels: int, mono: bool, repairs=None) -> Iterator[np.ndarray]:
    """Sanitise, mix down and resample ``(n, channels)`` blocks; the result does not depend on how
    the input is cut into blocks (soxr's streaming resampler is block-size invariant).

    Parameters
    ----------
    blocks : iterable of np.ndarray
        float32 blocks, shape ``(n_i, channels)``.
    native_sr, sr : int
        Their rate and the wanted rate, in Hz.
    channels : int
        Channels of the input blocks.
    mono : bool
        Average the channels into one.
    repairs : SampleRepairs, optional
        Counts of repaired samples are added to it.

    Yields
    ------
    np.ndarray
        float32 blocks at ``sr`` Hz, shape ``(m_i, 1)`` when ``mono`` else ``(m_i, channels)``.
    """
    resampler = None
    if native_sr != sr:
        resampler = soxr.ResampleStream(native_sr, sr, channels, dtype="float32", quality=RESAMPLE_QUALITY)
    for block in blocks:
        block = clean_samples(block, repairs)
        if mono and block.shape[1] > 1:
            block = _mix_down(block)
        if resampler is not None:
            block = resampler.resample_chunk(np.ascontiguousarray(block), last=False)
        if len(block):
            yield block.reshape(len(block), channels)
    if resampler is not None:
        tail = resampler.resample_chunk(np.zeros((0, channels), np.float32), last=True)
        if len(tail):
            yield tail.reshape(len(tail), channels)


def _mix_down(block: np.ndarray) -> np.ndarray:
    """Channel mean of ``(n, channels)`` as ``(n, 1)``; adding whole columns is several times
    faster than ``mean(axis=1)`` over the short channel axis."""
    mixed = block[:, 0].copy()
    for channel in range(1, block.shape[1]):
        mixed += block[:, channel]
    mixed /= block.shape[1]
    return mixed[:, None]
