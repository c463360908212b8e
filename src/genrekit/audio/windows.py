"""The one path from audio to windows: a file, an array or a stream of blocks becomes decoded,
cleaned (:mod:`.clean`), resampled and cut into fixed-length windows (:mod:`.segments`).

Everything in genrekit that turns audio into windows calls :func:`read_windows`: ``predict``
and the Python API, batch prediction and its decoding workers, the Ray stages, ``embed``,
training and evaluation features. ``tags`` reads the same cleaned, resampled stream
(:meth:`Windows.blocks`), because musicnn frames the whole signal rather than windows.

Memory is bounded by one decoded block (``block_duration`` seconds), one batch of windows and
one window carried between blocks, whatever the length of the audio.

The window budget
-----------------
With ``max_windows=N`` (``N > 0``), audio that holds more than ``N`` windows gives ``N`` of them,
spread evenly over it: the windows are divided into ``N`` equal runs and the middle window of each
run is kept (so the first and last windows, an intro or a fade-out, are not favoured). In a
file whose format can seek (WAV, FLAC, Ogg, MP3, M4A, ... see
:attr:`genrekit.audio.decode.AudioFile.seekable`), only the chosen windows are decoded, so time
and memory no longer grow with the length of the file. Other sources are read through and only
the chosen windows are kept. A stream of blocks has no known length: it always gives every window.
"""

from __future__ import annotations

import math
import os
from typing import Iterable, Iterator

import numpy as np

from genrekit.audio.clean import SampleRepairs, as_mono_float32
from genrekit.audio.decode import AudioFile, open_audio
from genrekit.audio.resample import check_sample_rate, resample_stream
from genrekit.audio.segments import Segments, WindowCutter, window_sizes
from genrekit.errors import CorruptAudioError, EmptyAudioError, UsageError

__all__ = ["DEFAULT_MAX_WINDOWS", "Windows", "budget_indices", "read_windows"]


#: The window budget of ``predict``, ``tag``, the service and the Python API
#: (:func:`genrekit.inference.predict.predict_audio`): a file with more windows is classified
#: from this many, spread evenly over it. Chosen by measurement (``benchmarks/bench_full_length.py``,
#: docs/benchmarks.md#full-length-tracks); feature extraction for training keeps every window.
DEFAULT_MAX_WINDOWS = 10


#: Seconds decoded before and after a window reached by seeking, then dropped: the resampler's
#: filter needs real audio on both sides to give the window's samples exactly as reading the
#: whole file does (its start-up and flush transients fall in these margins).
RESAMPLER_MARGIN = 0.05


def read_windows(
    source,
    sr: int,
    *,
    source_sr: int | None = None,
    window: float = 3.0,
    hop: float | None = None,
    last: str = "pad",
    offset: float = 0.0,
    duration: float | None = None,
    max_windows: int = 0,
    batch_size: int = 32,
    block_duration: float = 60.0,
) -> "Windows":
    """Decode, clean and resample audio and cut it into windows, in batches, in bounded memory.

    Parameters
    ----------
    source : str, path-like, np.ndarray or iterator of np.ndarray
        A file (any format :func:`genrekit.audio.decode.load_audio` reads); samples ``(n,)``,
        ``(channels, n)`` or ``(n, channels)`` (float at ±1 full scale or integer PCM); or an
        iterator of such blocks, one after the other.
    sr : int
        Sample rate of the windows, in Hz.
    source_sr : int, optional
        Sample rate of an array or a stream, in Hz (required for them; a file states its own).
    window, hop, last
        As in :func:`genrekit.audio.segments.segment_samples`: seconds per window, seconds
        between window starts (default ``window``), and ``"pad"`` or ``"drop"`` for the tail.
    offset : float, default 0.0
        Seconds skipped at the start (found by seeking in files).
    duration : float, optional
        Seconds read from ``offset``; default to the end.
    max_windows : int, default 0
        The window budget: at most this many windows, spread evenly (see the module docstring);
        0 gives every window.
    batch_size : int, default 32
        Windows per yielded :class:`~genrekit.audio.segments.Segments`.
    block_duration : float, default 60.0
        Seconds of audio decoded at a time.

    Returns
    -------
    Windows
        Iterate over it for the batches of windows (times in seconds from the start of the
        source, not from ``offset``).

    Raises
    ------
    AudioError
        A file that cannot be read: at once for the file as a whole, while iterating for damage
        found further in.
    UsageError
        Bad options or samples (rates out of range, an unusable dtype or shape).

    Examples
    --------
    >>> windows = read_windows(np.zeros(10 * 8000, np.float32), 16000, source_sr=8000, max_windows=2)
    >>> windows.total, [batch.starts.tolist() for batch in windows]
    (4, [[3.0, 9.0]])
    """
    width, step = window_sizes(sr, window, hop, last)
    check_sample_rate(sr, "sample rate")
    if not (isinstance(batch_size, (int, np.integer)) and batch_size > 0):
        raise UsageError(f"batch_size must be a positive integer, got {batch_size!r}")
    if isinstance(max_windows, bool) or not (isinstance(max_windows, (int, np.integer)) and max_windows >= 0):
        raise UsageError(f"max_windows must be a whole number of windows, 0 for all, got {max_windows!r}")
    if not (isinstance(offset, (int, float, np.number)) and np.isfinite(offset) and offset >= 0):
        raise UsageError(f"offset must be zero or positive seconds, got {offset!r}")
    if duration is not None and not (isinstance(duration, (int, float, np.number)) and duration > 0):
        raise UsageError(f"duration must be positive seconds, got {duration!r}")
    if not block_duration > 0:
        raise UsageError(f"block_duration must be positive, got {block_duration}")
    cutter = WindowCutter(width, step, last)
    reading = dict(sr=sr, cutter=cutter, offset=float(offset), duration=duration, max_windows=int(max_windows),
                   batch_size=int(batch_size), block_duration=float(block_duration))
    if isinstance(source, (str, os.PathLike)):
        limit = None if duration is None else offset + duration + 1.0
        return Windows(open_audio(source, max_duration=limit), None, **reading)
    if isinstance(source, Iterator):
        return Windows(None, _Stream(source, _source_rate(source_sr)), **reading)
    return Windows(None, _Array(source, _source_rate(source_sr)), **reading)


def budget_indices(total: int, max_windows: int) -> np.ndarray:
    """Which of ``total`` windows a budget of ``max_windows`` keeps.

    The middle window of each of ``max_windows`` equal runs; every window when the budget is 0 or
    not smaller than ``total``.

    Parameters
    ----------
    total : int
        Windows in the audio.
    max_windows : int
        The budget (0: no budget).

    Returns
    -------
    np.ndarray
        int64 indices, increasing, shape ``(min(total, max_windows),)`` (``(total,)`` without a
        budget).

    Examples
    --------
    >>> budget_indices(80, 4).tolist(), budget_indices(3, 4).tolist()
    ([10, 30, 50, 70], [0, 1, 2])
    """
    if max_windows <= 0 or total <= max_windows:
        return np.arange(total)
    return np.floor((np.arange(max_windows) + 0.5) * total / max_windows).astype(np.int64)


class Windows:
    """The windows of one source, from :func:`read_windows`: iterate for batches of
    :class:`~genrekit.audio.segments.Segments`.

    Attributes
    ----------
    sr : int
        Sample rate of the windows in Hz.
    duration : float or None
        Seconds of audio in the requested range: from the file's header or the array's length
        before iterating, the seconds actually decoded after a complete pass over every window;
        ``None`` for a stream until it has been read.
    total : int or None
        How many windows the whole range holds (``None`` for a stream).
    repairs : SampleRepairs
        Samples repaired (NaN, infinite, absurdly large) so far.
    """

    def __init__(self, file: AudioFile | None, memory, *, sr, cutter, offset, duration, max_windows,
                 batch_size, block_duration):
        self.file, self.memory, self.sr, self.cutter = file, memory, sr, cutter
        self.offset, self.requested, self.max_windows = offset, duration, max_windows
        self.batch_size, self.block_duration = batch_size, block_duration
        self.repairs = SampleRepairs()
        self.duration = self._known_duration()
        self.total = None if self.duration is None else cutter.count(int(round(self.duration * sr)))
        if file is not None and offset and self.duration <= 0:
            raise EmptyAudioError(file.path, f"offset {offset:g} s is past the end ({file.info.duration:.3f} s)")

    @property
    def count(self) -> int | None:
        """How many windows iterating gives (``None`` for a stream)."""
        return None if self.total is None else min(self.total, self.max_windows or self.total)

    @property
    def budgeted(self) -> bool:
        """Whether the budget leaves windows out."""
        return self.total is not None and self.count < self.total

    def blocks(self) -> Iterator[np.ndarray]:
        """The cleaned mono samples of the whole range, block by block.

        Every sample, whatever the budget (the budget chooses windows); :attr:`duration` is what
        they held once read.

        Yields
        ------
        np.ndarray
            float32, shape ``(n_i,)``, at :attr:`sr` Hz.
        """
        if self.file is not None:
            blocks = self.file.blocks(self.sr, offset=self.offset, duration=self.requested,
                                      block_duration=self.block_duration, repairs=self.repairs)
        else:
            blocks = self.memory.blocks(self.sr, self.offset, self.requested, self.block_duration, self.repairs)
        return self._counted(blocks)

    def _counted(self, blocks: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        samples = 0
        for block in blocks:
            samples += len(block)
            yield block
        self.duration = samples / self.sr

    def __iter__(self) -> Iterator[Segments]:
        if self.budgeted and self.file is not None and self.file.seekable and self._seeking_pays():
            return self._seek_windows(budget_indices(self.total, self.max_windows))
        return self._read_through()

    def collect(self) -> Segments:
        """Every window of this reading in one batch.

        Returns
        -------
        Segments
            Samples ``(count, window_samples)``; empty when the range holds no audio.
        """
        batches = list(self)
        if not batches:
            return Segments(np.zeros((0, self.cutter.width), np.float32), np.zeros(0), np.zeros(0), np.zeros(0, bool))
        return Segments(samples=np.concatenate([b.samples for b in batches]),
                        starts=np.concatenate([b.starts for b in batches]),
                        ends=np.concatenate([b.ends for b in batches]),
                        padded=np.concatenate([b.padded for b in batches]))

    def _known_duration(self) -> float | None:
        if self.file is not None:
            available = max(self.file.info.duration - self.offset, 0.0)
        elif self.memory.seconds is not None:
            available = max(self.memory.seconds - self.offset, 0.0)
        else:
            return None
        return available if self.requested is None else min(available, self.requested)

    def _seeking_pays(self) -> bool:
        """Seek to each window only when the windows are a small part of the range."""
        return self.count * self.cutter.width / self.sr < 0.5 * self.duration

    def _read_through(self) -> Iterator[Segments]:
        keep = None
        if self.budgeted:
            chosen = set(budget_indices(self.total, self.max_windows).tolist())
            keep = chosen.__contains__
        yield from self.cutter.cut_stream(self.blocks(), self.sr, time_origin=self.offset,
                                          batch_size=self.batch_size, keep=keep)

    def _seek_windows(self, indices: np.ndarray) -> Iterator[Segments]:
        """Decode each chosen window alone, from a little before it (see :data:`RESAMPLER_PREROLL`)."""
        with self.file:  # one open file for every window
            yield from self._seek_each(indices)

    def _seek_each(self, indices: np.ndarray) -> Iterator[Segments]:
        rows, produced = [], False
        range_samples = int(round(self.duration * self.sr))
        for index in indices:
            start = int(index) * self.cutter.step
            length = min(self.cutter.width, range_samples - start)
            samples = self._decode_window(start, length, min(range_samples - start - length, self.margin))
            if len(samples) == 0:  # the header promised more than the file holds
                continue
            rows.append((start, samples, len(samples)))
            if len(rows) == self.batch_size:
                yield self.cutter.batch(rows, self.sr, self.offset)
                rows, produced = [], True
        if rows:
            yield self.cutter.batch(rows, self.sr, self.offset)
        elif not produced:
            raise EmptyAudioError(self.file.path, "no samples decoded")

    @property
    def margin(self) -> int:
        """Samples decoded on each side of a window reached by seeking (:data:`RESAMPLER_MARGIN`)."""
        return int(RESAMPLER_MARGIN * self.sr)

    def _decode_window(self, start: int, length: int, after: int) -> np.ndarray:
        """Samples ``[start, start + length)`` of the range (at :attr:`sr`) as reading through
        gives them: decoding starts on an instant that falls on a sample at both rates, a little
        before the window, and ends ``after`` samples past it."""
        native = self.file.info.sr
        grid = self.sr // math.gcd(self.sr, native)  # output samples between shared instants
        first = max(0, (start - self.margin) // grid * grid)
        at = round(self.offset * native) / native + first / self.sr
        try:
            blocks = self.file.blocks(self.sr, offset=at, duration=(start - first + length + after) / self.sr,
                                      block_duration=self.block_duration, repairs=self.repairs)
            samples = np.concatenate(list(blocks))
        except EmptyAudioError:
            return np.zeros(0, np.float32)
        except CorruptAudioError as error:
            if not (error.detail or "").startswith("truncated"):
                raise
            self.repairs.truncated = error.detail.removeprefix("truncated: ")  # the file ends before this window
            return np.zeros(0, np.float32)
        return samples[start - first: start - first + length]


def _source_rate(source_sr) -> int:
    if source_sr is None:
        raise UsageError("sr is required when the audio is an array of samples or a stream of blocks")
    try:
        valid = not isinstance(source_sr, bool) and float(source_sr) == int(source_sr)
    except (TypeError, ValueError, OverflowError):
        valid = False
    if not valid or int(source_sr) <= 0:
        raise UsageError(f"sr must be a positive whole number of samples per second, got {source_sr!r}")
    return check_sample_rate(int(source_sr), "sr")


class _Array:
    """Samples in memory: sliced to the range, then cleaned and resampled like a file's blocks."""

    def __init__(self, samples, source_sr: int):
        self.repairs = SampleRepairs()
        self.samples = as_mono_float32(samples, self.repairs)
        self.source_sr = source_sr
        self.seconds = len(self.samples) / source_sr

    def blocks(self, sr, offset, duration, block_duration, repairs) -> Iterator[np.ndarray]:
        repairs.add(self.repairs)
        self.repairs = SampleRepairs()  # counted once, however often the array is read
        start = int(round(offset * self.source_sr))
        stop = None if duration is None else start + int(round(duration * self.source_sr))
        samples = self.samples[start:stop]
        step = max(1, int(round(block_duration * self.source_sr)))
        pieces = (samples[first:first + step] for first in range(0, len(samples), step))
        return resample_stream(pieces, self.source_sr, sr, repairs)


class _Stream:
    """Blocks from an iterator, read once; each block may have any shape an array may have."""

    seconds = None

    def __init__(self, blocks: Iterator, source_sr: int):
        self.source, self.source_sr = blocks, source_sr

    def blocks(self, sr, offset, duration, block_duration, repairs) -> Iterator[np.ndarray]:
        return resample_stream(_excerpt(self._mono(repairs), self.source_sr, offset, duration),
                               self.source_sr, sr, repairs)

    def _mono(self, repairs) -> Iterator[np.ndarray]:
        for block in self.source:
            yield as_mono_float32(block, repairs)


def _excerpt(blocks: Iterable[np.ndarray], sr: int, offset: float, duration: float | None) -> Iterator[np.ndarray]:
    """The samples of ``[offset, offset + duration)`` seconds of consecutive blocks."""
    start = int(round(offset * sr))
    stop = None if duration is None else start + int(round(duration * sr))
    position = 0
    for block in blocks:
        begin, position = position, position + len(block)
        if position <= start:
            continue
        yield block[max(0, start - begin): None if stop is None else max(0, stop - begin)]
        if stop is not None and position >= stop:
            return
