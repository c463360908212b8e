"""The one place where samples from outside are made safe to compute features from.

Files (through :mod:`.decode`) and arrays given to the Python API (through
:func:`as_mono_float32`) both pass through :func:`clean_samples`:

- not-a-number and infinite samples (possible in float WAV files and in arrays) become 0: one
  bad sample should not make a whole track unusable, and NaN would poison every feature;
- samples beyond ±:data:`MAX_SAMPLE` (a float file scaled to 1e19 overflows the power
  spectrum to infinity, and every probability to NaN) are clipped to it.

Both are counted in a :class:`SampleRepairs`, so that the result can say its audio was repaired.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from genrekit.errors import UsageError

__all__ = ["MAX_SAMPLE", "MAX_CHANNELS", "SampleRepairs", "clean_samples", "as_mono_float32"]


#: Largest magnitude a sample may have (+36 dB above full scale). Float audio may go past 1.0
#: legitimately, but not by this much: beyond it the file is broken or mis-scaled, and clipping
#: keeps every feature finite (64² times a 4096-point window is far below float32's range).
MAX_SAMPLE = 64.0


#: Most channels an array given to the API may have; used to tell ``(n, channels)`` from
#: ``(channels, n)``.
MAX_CHANNELS = 16


@dataclass
class SampleRepairs:
    """Counts of samples :func:`clean_samples` replaced (accumulated over blocks), and how the audio
    was found cut short.

    Attributes
    ----------
    non_finite : int
        NaN or infinite samples replaced by 0.
    clipped : int
        Samples beyond ±``MAX_SAMPLE`` clipped.
    truncated : str or None
        How the decoder found the file cut short (the file was used all the same).
    """

    non_finite: int = 0
    clipped: int = 0
    truncated: str | None = None

    def __bool__(self) -> bool:
        return bool(self.non_finite or self.clipped or self.truncated)

    def add(self, other: "SampleRepairs") -> None:
        """Add another count to this one.

        Parameters
        ----------
        other : SampleRepairs
        """
        self.non_finite += other.non_finite
        self.clipped += other.clipped
        self.truncated = self.truncated or other.truncated

    def describe(self) -> str | None:
        """One line for people.

        Returns
        -------
        str or None
            ``None`` when nothing was repaired.
        """
        parts = []
        if self.non_finite:
            parts.append(f"{self.non_finite} non-finite (NaN/inf) samples replaced by 0")
        if self.clipped:
            parts.append(f"{self.clipped} samples beyond ±{MAX_SAMPLE:g} clipped")
        if self.truncated:
            parts.append(f"truncated: {self.truncated} (classified from what decodes)")
        return "; ".join(parts) or None


def clean_samples(block: np.ndarray, repairs: SampleRepairs | None = None) -> np.ndarray:
    """``block`` with NaN/inf set to 0 and huge values clipped.

    The common clean case costs three passes and no copy; a dirty block is repaired in a copy
    (the caller's array is never changed).

    Parameters
    ----------
    block : np.ndarray
        Samples of any float dtype and shape.
    repairs : SampleRepairs, optional
        Counts are added to it.

    Returns
    -------
    np.ndarray
        ``block`` itself when clean, else a repaired copy of the same dtype and shape.
    """
    if block.size == 0:
        return block
    with np.errstate(invalid="ignore", over="ignore"):
        total = np.sum(block, dtype=np.float64)
        if np.isfinite(total) and block.max() <= MAX_SAMPLE and block.min() >= -MAX_SAMPLE:
            return block
    finite = np.isfinite(block)
    n_bad = int(block.size - np.count_nonzero(finite))
    out = np.where(finite, block, 0).astype(block.dtype, copy=False)
    huge = np.abs(out) > MAX_SAMPLE
    n_huge = int(np.count_nonzero(huge))
    if n_huge:
        np.clip(out, -MAX_SAMPLE, MAX_SAMPLE, out=out)
    if repairs is not None:
        repairs.non_finite += n_bad
        repairs.clipped += n_huge
    return out


def as_mono_float32(audio, repairs: SampleRepairs | None = None) -> np.ndarray:
    """An array from a caller as clean mono float32 ``(n,)``.

    Accepts ``(n,)``, ``(channels, n)`` and ``(n, channels)`` (what ``soundfile.read`` returns;
    the axis with at most :data:`MAX_CHANNELS` entries, and fewer than the other, is the
    channel axis). Float samples are full scale at ±1; signed integer PCM is scaled by its
    full scale (int16 by 32768), unsigned 8-bit is centred on 128 as in WAV files.

    Parameters
    ----------
    audio : array-like
        Samples ``(n,)``, ``(channels, n)`` or ``(n, channels)``.
    repairs : SampleRepairs, optional
        Counts of repaired samples are added to it.

    Returns
    -------
    np.ndarray
        float32, shape ``(n,)``, the channels averaged.

    Raises
    ------
    UsageError
        For other dtypes (bool, complex, wider unsigned integers, objects) or shapes; for a
        plain list (a list of file names would read as strings); for a 2-D array without
        samples or whose channel axis cannot be told (as many rows as columns).
    """
    if isinstance(audio, (list, tuple)):
        raise UsageError("audio must be a file path or a NumPy array of samples, not a "
                         f"{type(audio).__name__} (np.asarray(samples, dtype=np.float32) makes one)")
    try:
        array = np.asarray(audio)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"audio must be an array of samples ({exc})") from None
    kind = array.dtype.kind
    if kind == "f":
        samples = clean_samples(array, repairs).astype(np.float32, copy=False)
    elif kind == "i":
        samples = array.astype(np.float32) / float(2 ** (8 * array.dtype.itemsize - 1))
    elif kind == "u" and array.dtype.itemsize == 1:
        samples = (array.astype(np.float32) - 128.0) / 128.0
    else:
        raise UsageError(
            f"audio samples must be float (±1 full scale) or signed integer PCM, not {array.dtype}")
    if samples.ndim == 1:
        return samples
    if samples.ndim != 2:
        raise UsageError(f"audio must have shape (n,), (channels, n) or (n, channels), not {samples.shape}")
    rows, cols = samples.shape
    if rows == 0 or cols == 0:
        raise UsageError(f"audio holds no samples (shape {samples.shape})")
    if rows == cols:
        raise UsageError(f"cannot tell the channel axis of an array of shape {samples.shape}: give (n,), "
                         "(channels, n) or (n, channels) with more samples than channels")
    if cols < rows and cols <= MAX_CHANNELS:
        samples = samples.T  # (n, channels), as soundfile returns it
    elif rows > MAX_CHANNELS:
        raise UsageError(f"cannot tell the channel axis of an array of shape {samples.shape} "
                         f"(at most {MAX_CHANNELS} channels)")
    if samples.shape[0] == 1:
        return np.ascontiguousarray(samples[0])
    return samples.mean(axis=0, dtype=np.float32)
