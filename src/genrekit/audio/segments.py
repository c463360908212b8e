"""Cut audio into fixed-length windows, the unit every genre model classifies.

A clip is cut into windows of ``window`` seconds every ``hop`` seconds (by default
``hop = window``: no overlap). The audio left after the last full window is zero-padded into
one more window (``last="pad"``, the default) or dropped (``last="drop"``); a clip shorter than
one window always gives one padded window, so that every clip gets a prediction.

:func:`segment_samples` works on an array in memory; :func:`genrekit.audio.windows.read_windows`
(the one path from a file, an array or a stream to windows) gives the same windows in batches,
in memory bounded by the block size, whatever the length of the audio.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

import numpy as np

from genrekit.errors import UsageError

__all__ = ["LAST_POLICIES", "SegmentSettings", "Segments", "WindowCutter", "segment_samples", "window_sizes"]


LAST_POLICIES = ("pad", "drop")


#: With ``last="pad"``, audio left after the last full window becomes one more (zero-padded)
#: window only if it holds at least this fraction of a window of audio not already covered:
#: a 30.01 s clip should not end with a 0.01 s window that is 99.7 % silence.
MIN_TAIL = 0.25


@dataclass(frozen=True)
class SegmentSettings:
    """How a model cuts audio: ``window`` seconds every ``hop`` seconds, the tail padded or dropped.

    The typed form of the ``segment`` spec of model files and training configs
    (``{"window": 3.0, "hop": 3.0, "last": "pad"}``).

    Parameters
    ----------
    window : float, default 3.0
        Window length in seconds.
    hop : float or None, default None
        Seconds between window starts; ``None`` means ``window``.
    last : {"pad", "drop"}, default "pad"
        What happens to the audio after the last full window (see :func:`segment_samples`).

    Raises
    ------
    UsageError
        A non-positive ``window`` or ``hop``, or an unknown ``last``.

    Examples
    --------
    >>> SegmentSettings(window=3.0).to_spec()
    {'window': 3.0, 'hop': 3.0, 'last': 'pad'}
    """

    window: float = 3.0
    hop: float | None = None
    last: str = "pad"

    def __post_init__(self):
        if not (isinstance(self.window, (int, float)) and self.window > 0):
            raise UsageError(f"segment window must be positive seconds, not {self.window!r}")
        if self.hop is not None and not (isinstance(self.hop, (int, float)) and self.hop > 0):
            raise UsageError(f"segment hop must be positive seconds, not {self.hop!r}")
        if self.last not in LAST_POLICIES:
            raise UsageError(f"segment last must be one of {', '.join(LAST_POLICIES)}, not {self.last!r}")
        object.__setattr__(self, "window", float(self.window))
        object.__setattr__(self, "hop", float(self.window if self.hop is None else self.hop))

    @classmethod
    def from_spec(cls, spec: dict) -> "SegmentSettings":
        """Settings from a ``segment`` spec.

        Parameters
        ----------
        spec : dict
            Some of ``window``, ``hop`` and ``last``.

        Returns
        -------
        SegmentSettings

        Raises
        ------
        UsageError
            An unknown key or a bad value.
        """
        unknown = set(spec) - {"window", "hop", "last"}
        if unknown:
            raise UsageError(f"unknown segment setting {sorted(unknown)[0]!r} (known: window, hop, last)")
        return cls(**spec)

    def to_spec(self) -> dict:
        """The complete spec, every default written out (model files and cache keys use it).

        Returns
        -------
        dict
            ``{"window": float, "hop": float, "last": str}``.
        """
        return {"window": self.window, "hop": self.hop, "last": self.last}

    def cut(self, samples: np.ndarray, sr: int) -> "Segments":
        """:func:`segment_samples` with these settings.

        Parameters
        ----------
        samples : np.ndarray
            Mono audio, shape ``(n,)``.
        sr : int
            Sample rate of ``samples`` in Hz.

        Returns
        -------
        Segments
        """
        return segment_samples(samples, sr, window=self.window, hop=self.hop, last=self.last)


@dataclass(frozen=True)
class Segments:
    """A batch of equal-length windows cut from one clip.

    Attributes
    ----------
    samples : np.ndarray, float32, shape (n_segments, window_samples)
        The windows; padded windows end in zeros.
    starts : np.ndarray, float64, shape (n_segments,)
        Start of each window in seconds.
    ends : np.ndarray, float64, shape (n_segments,)
        End of the real audio in each window in seconds (before any padding), so
        ``ends - starts`` is the window length except for a padded window.
    padded : np.ndarray, bool, shape (n_segments,)
        Whether the window was completed with zeros.
    """

    samples: np.ndarray
    starts: np.ndarray
    ends: np.ndarray
    padded: np.ndarray

    def __len__(self) -> int:
        return len(self.samples)


def segment_samples(
    samples: np.ndarray,
    sr: int,
    *,
    window: float = 3.0,
    hop: float | None = None,
    last: str = "pad",
) -> Segments:
    """Cut mono samples into fixed-length windows.

    Parameters
    ----------
    samples : np.ndarray, shape (n,)
        Mono audio.
    sr : int
        Sample rate of ``samples`` in Hz.
    window : float, default 3.0
        Window length in seconds (rounded to whole samples).
    hop : float or None, default None
        Seconds between window starts; ``None`` means ``window`` (no overlap). A hop
        longer than the window skips the audio in between.
    last : {"pad", "drop"}, default "pad"
        What to do with the audio after the last full window: zero-pad it into one more
        window (when it holds at least ``MIN_TAIL`` of a window of new audio), or drop it.
        A clip shorter than one window is always padded into one window.

    Returns
    -------
    Segments
        Times start at 0 (the first sample). Empty ``samples`` give no windows.

    Raises
    ------
    UsageError
        A non-positive ``window`` or ``hop``, or an unknown ``last``.
    ValueError
        ``samples`` is not one-dimensional.

    Examples
    --------
    >>> segments = segment_samples(np.ones(7 * 22050, np.float32), 22050)
    >>> segments.samples.shape, segments.starts, segments.ends, segments.padded
    ((3, 66150), array([0., 3., 6.]), array([3., 6., 7.]), array([False, False,  True]))
    """
    samples = np.asarray(samples, dtype=np.float32)
    if samples.ndim != 1:
        raise ValueError(f"segment_samples expects mono samples of shape (n,), got shape {samples.shape}")
    width, step = window_sizes(sr, window, hop, last)
    return WindowCutter(width, step, last).cut_all(samples, sr, time_origin=0.0)


def window_sizes(sr: int, window: float, hop: float | None, last: str) -> tuple[int, int]:
    """Window length and hop in whole samples, after checking the options.

    Parameters
    ----------
    sr : int
        Sample rate in Hz.
    window : float
        Window length in seconds.
    hop : float or None
        Seconds between window starts; None means ``window``.
    last : {"pad", "drop"}
        Checked only.

    Returns
    -------
    width, step : int
        In samples.

    Raises
    ------
    UsageError
        A non-positive ``window`` or ``hop``, an unknown ``last``, or less than one sample.

    Examples
    --------
    >>> window_sizes(16000, 3.0, 1.5, "pad")
    (48000, 24000)
    """
    if last not in LAST_POLICIES:
        raise UsageError(f"last must be one of {', '.join(LAST_POLICIES)}; got {last!r}")
    if not window > 0:
        raise UsageError(f"window must be positive seconds, got {window}")
    if hop is not None and not hop > 0:
        raise UsageError(f"hop must be positive seconds, got {hop}")
    width = int(round(window * sr))
    step = width if hop is None else int(round(hop * sr))
    if width < 1 or step < 1:
        raise UsageError(f"window and hop must each span at least one sample at {sr} Hz")
    return width, step


@dataclass(frozen=True)
class WindowCutter:
    """Window positions in samples; shared by the in-memory and streaming paths
    (:func:`genrekit.audio.windows.read_windows`) so that both produce identical windows and times.

    Parameters
    ----------
    width : int
        Window length in samples.
    step : int
        Samples between window starts.
    last : {"pad", "drop"}
        What happens to the audio after the last full window (see :func:`segment_samples`).
    """

    width: int
    step: int
    last: str

    def tail_start(self, full_windows: int, total: int) -> int | None:
        """Start of the padded window after ``full_windows`` full ones, or ``None``.

        Parameters
        ----------
        full_windows : int
            Number of full windows in the audio.
        total : int
            Length of the audio in samples.

        Returns
        -------
        int or None
            In samples; None when the tail is dropped or there is none.
        """
        start = full_windows * self.step
        if start >= total:
            return None
        if full_windows == 0:
            return start  # a clip shorter than one window is always padded
        new_audio = total - ((full_windows - 1) * self.step + self.width)
        if self.last == "pad" and new_audio >= MIN_TAIL * self.width:
            return start
        return None

    def count(self, total: int) -> int:
        """How many windows ``total`` samples give.

        Parameters
        ----------
        total : int
            Length of the audio in samples.

        Returns
        -------
        int
        """
        full = (total - self.width) // self.step + 1 if total >= self.width else 0
        return full + (self.tail_start(full, total) is not None)

    def cut_all(self, samples: np.ndarray, sr: int, time_origin: float) -> Segments:
        """Every window of ``samples`` in one batch.

        Parameters
        ----------
        samples : np.ndarray
            Mono audio, float32, shape ``(n,)``.
        sr : int
            Its sample rate in Hz (for the times).
        time_origin : float
            Time of the first sample, in seconds.

        Returns
        -------
        Segments
        """
        total = len(samples)
        full = (total - self.width) // self.step + 1 if total >= self.width else 0
        rows = []
        if full:
            views = np.lib.stride_tricks.sliding_window_view(samples, self.width)[:: self.step]
            rows = [(index * self.step, views[index], self.width) for index in range(full)]
        tail = self.tail_start(full, total)
        if tail is not None:
            rows.append((tail, samples[tail:], total - tail))
        return self.batch(rows, sr, time_origin)

    def cut_stream(self, blocks: Iterable[np.ndarray], sr: int, time_origin: float,
                   batch_size: int, keep: Callable[[int], bool] | None = None) -> Iterator[Segments]:
        """Windows of consecutive blocks, in batches, in memory bounded by one block and one window.

        Parameters
        ----------
        blocks : iterable of np.ndarray
            Consecutive mono blocks, float32, shape ``(n_i,)``.
        sr : int
            Their sample rate in Hz.
        time_origin : float
            Time of the first sample, in seconds.
        batch_size : int
            Windows per yielded batch (the last may be smaller).
        keep : callable, optional
            ``keep(index) -> bool``: only the windows whose index it accepts are kept (the others
            are not copied).

        Yields
        ------
        Segments
        """
        carry = np.zeros(0, np.float32)  # samples [carry_start, total) that later windows need
        carry_start = total = next_start = full = 0
        rows = []
        for block in blocks:
            carry = np.concatenate([carry, block])
            total += len(block)
            while next_start + self.width <= total:
                at = next_start - carry_start
                if keep is None or keep(full):
                    rows.append((next_start, carry[at: at + self.width], self.width))
                next_start += self.step
                full += 1
                if len(rows) == batch_size:
                    yield self.batch(rows, sr, time_origin)
                    rows = []
            keep_from = min(next_start, total)
            carry = carry[keep_from - carry_start:]
            carry_start = keep_from
        tail = self.tail_start(full, total)
        if tail is not None and (keep is None or keep(full)):
            rows.append((tail, carry[tail - carry_start:], total - tail))
        if rows:
            yield self.batch(rows, sr, time_origin)

    def batch(self, rows: list[tuple[int, np.ndarray, int]], sr: int, time_origin: float) -> Segments:
        """Stack ``(start sample, samples, real length)`` rows, zero-padding short ones.

        Parameters
        ----------
        rows : list of (int, np.ndarray, int)
            Start in samples, the samples (at least the real length), and the real length.
        sr : int
            Sample rate in Hz.
        time_origin : float
            Time of sample 0, in seconds.

        Returns
        -------
        Segments
        """
        windows = np.zeros((len(rows), self.width), np.float32)
        for window, (_, samples, length) in zip(windows, rows):
            window[:length] = samples[:length]
        starts = np.array([start for start, _, _ in rows], dtype=np.int64)
        lengths = np.array([length for _, _, length in rows], dtype=np.int64)
        return Segments(
            samples=windows,
            starts=starts / sr + time_origin,
            ends=(starts + lengths) / sr + time_origin,
            padded=lengths < self.width,
        )
