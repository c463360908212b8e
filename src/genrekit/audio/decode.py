"""Decode audio files into float32 samples at a chosen sample rate.

Every function here reads through two backends: libsndfile (via ``soundfile``) for WAV, AU,
AIFF, FLAC, Ogg Vorbis, Opus and MP3, and FFmpeg (via PyAV) for everything else (M4A/AAC,
WMA, WebM, ...) and for files libsndfile rejects. Samples are converted to float32 in
[-1, 1], optionally mixed down to mono by averaging channels, and resampled with soxr
(``"HQ"`` quality) in a streaming fashion, so that :func:`load_audio` and
:func:`stream_audio` return exactly the same samples whatever the block size.

Offsets and durations are honoured by seeking: reading the last 10 seconds of an hour-long
file does not decode the whole hour.

Failures raise one :class:`genrekit.errors.AudioError` subclass per cause:

- :class:`~genrekit.errors.AudioMissingError`: the path does not exist or is a folder;
- :class:`~genrekit.errors.NotAudioError`: text, random bytes, an image, a video without sound;
- :class:`~genrekit.errors.CorruptAudioError`: a known audio format whose data is damaged or
  cut short (e.g. a header that declares more samples than the file holds);
- :class:`~genrekit.errors.EmptyAudioError`: a zero-length file, a file without samples, or an
  ``offset`` at or past the end;
- :class:`~genrekit.errors.UnsupportedAudioError`: an audio stream with no available decoder.

Not-a-number and infinite samples (possible in float WAV files) are replaced by 0, and absurdly
large ones clipped, by :func:`genrekit.audio.clean.clean_samples` before anything else; the
counts are reported in :attr:`Audio.repairs` (or the ``repairs`` given to :func:`stream_audio`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import soundfile as sf

from genrekit.audio.clean import SampleRepairs
from genrekit.audio.quiet import c_stderr_silenced
from genrekit.audio.resample import (
    MAX_SAMPLE_RATE,
    MIN_SAMPLE_RATE,
    check_sample_rate,
    convert_blocks,
)
from genrekit.audio.sniff import (
    has_audio_signature,
    is_mpeg_audio,
    looks_like_text,
    states_exact_length,
    truncation,
)
from genrekit.errors import (
    AudioError,
    AudioMissingError,
    CorruptAudioError,
    EmptyAudioError,
    NotAudioError,
    UnsupportedAudioError,
    UsageError,
)

__all__ = ["AUDIO_EXTENSIONS", "Audio", "AudioFile", "AudioInfo", "audio_info", "load_audio", "open_audio",
           "stream_audio"]


#: File suffixes treated as audio when scanning folders (lowercase, with the dot).
AUDIO_EXTENSIONS = frozenset({
    ".wav", ".wave", ".au", ".snd", ".aif", ".aiff", ".aifc", ".flac", ".ogg", ".oga", ".opus",
    ".mp3", ".m4a", ".aac", ".mp4", ".alac", ".wma", ".webm", ".mka", ".caf", ".w64", ".rf64",
    ".wv", ".tta", ".ape", ".mpc", ".dsf",
})


#: A file cut short is classified from what decodes (with a warning) when at least this many
#: seconds of the requested audio decode (or half of a shorter request); with less it is an
#: error: too little to classify.
MIN_DECODABLE = 1.0


#: Seconds decoded before an offset when seeking with FFmpeg, so that codecs with inter-frame
#: state (AAC priming, the MP3 bit reservoir) are settled at the offset (0.1 s was too short for
#: libsndfile-written MP3, tests/test_audio.py); each window the window budget seeks to pays it.
_SEEK_PREROLL = 0.3


#: Formats libsndfile opens but FFmpeg decodes better. libsndfile 1.2's MP3 decoder corrupts
#: samples when a file is read in several calls (the bit reservoir is lost between calls) and
#: outputs silence after a seek; FFmpeg's is gapless and exact.
_FFMPEG_FORMATS = frozenset({"mp3"})


#: libsndfile's frame count for a stream of unknown length (SF_COUNT_MAX), e.g. a FLAC file whose
#: STREAMINFO says 0 total samples ("unknown", written by streaming encoders).
_UNKNOWN_LENGTH = 2**63 - 1


@dataclass(frozen=True)
class Audio:
    """Decoded audio.

    Attributes
    ----------
    samples : np.ndarray, float32
        Shape ``(n,)`` when mixed down to mono, ``(channels, n)`` otherwise.
    sr : int
        Sample rate of ``samples`` in Hz.
    duration : float
        Seconds of audio in ``samples`` (``n / sr``).
    source_duration : float or None
        Length of the whole file in seconds, when the file states it.
    repairs : SampleRepairs or None
        Samples that were NaN, infinite or absurdly large, and were replaced.
    """

    samples: np.ndarray
    sr: int
    duration: float
    source_duration: float | None
    repairs: SampleRepairs | None = None


@dataclass(frozen=True)
class AudioInfo:
    """What a file's header says, without decoding it.

    Attributes
    ----------
    sr : int
        Native sample rate in Hz.
    channels : int
        Number of channels.
    frames : int
        Samples per channel (estimated from the duration for some compressed containers).
    duration : float
        Length in seconds.
    format : str
        Container, lowercase: ``"wav"``, ``"flac"``, ``"ogg"``, ``"mp3"``, ``"m4a"``, ...
    codec : str or None
        Sample encoding as the decoding library names it, lowercase: ``"pcm_16"``,
        ``"vorbis"``, ``"mpeg_layer_iii"`` (libsndfile), ``"aac"`` (FFmpeg), ...
    lower_bound : bool
        ``True`` when the header states no length and counting the samples stopped at the
        ``max_duration`` given to :func:`audio_info`: the file holds *more* than ``frames``.
    truncated : str or None
        How the container shows that the file was cut short (a WAV header declaring more bytes
        than the file holds, an Ogg stream without its last page); ``frames`` counts what is there.
    """

    sr: int
    channels: int
    frames: int
    duration: float
    format: str
    codec: str | None = None
    lower_bound: bool = False
    truncated: str | None = None


def audio_info(path: str | os.PathLike, *, max_duration: float | None = None) -> AudioInfo:
    """Read sample rate, channels and length of an audio file from its header.

    When the header states no length (a FLAC file with 0 total samples in its STREAMINFO, a
    Matroska or raw stream without a duration), the samples are counted by decoding.

    Parameters
    ----------
    path : str or path-like
        Any file :func:`load_audio` can read.
    max_duration : float, optional
        Bound the work of counting: stop decoding as soon as more than ``max_duration`` seconds
        are found, and return what was counted with ``lower_bound=True``. Lengths stated in
        the header are returned as they are, however long.

    Returns
    -------
    AudioInfo

    Raises
    ------
    AudioError
        The subclass names the cause (missing, not audio, corrupt, empty, unsupported).
    """
    if max_duration is not None and not max_duration > 0:
        raise UsageError(f"max_duration must be positive seconds, got {max_duration}")
    info, _ = _probe(Path(path), count_limit=max_duration)
    return info


def load_audio(
    path: str | os.PathLike,
    sr: int | None = 22050,
    *,
    offset: float = 0.0,
    duration: float | None = None,
    mono: bool = True,
) -> Audio:
    """Decode an audio file (or part of it) to float32 samples at ``sr``.

    Parameters
    ----------
    path : str or path-like
        WAV, AU, AIFF, FLAC, Ogg Vorbis, Opus, MP3, M4A/AAC or any other format FFmpeg reads.
    sr : int or None, default 22050
        Target sample rate in Hz; ``None`` keeps the file's own rate.
    offset : float, default 0.0
        Seconds to skip from the start (found by seeking, not by decoding).
    duration : float or None, default None
        Seconds to read from ``offset``; ``None`` reads to the end.
    mono : bool, default True
        Average the channels into shape ``(n,)``; with ``False`` the result is always
        two-dimensional, ``(channels, n)``, even for a mono file.

    Returns
    -------
    Audio
        ``samples``, ``sr``, ``duration`` (of the returned samples) and ``source_duration``
        (of the whole file).

    Raises
    ------
    AudioError
        A subclass per cause; :class:`~genrekit.errors.EmptyAudioError` also for an ``offset`` at or past the end.
    UsageError
        Negative ``offset``, non-positive ``duration`` or ``sr``.

    Examples
    --------
    >>> import tempfile; path = os.path.join(tempfile.mkdtemp(), "20s.flac")
    >>> sf.write(path, np.zeros(20 * 44100), 44100)  # 20 s of silence at 44.1 kHz
    >>> load_audio(path, sr=16000, offset=10.0, duration=3.0).samples.shape
    (48000,)
    """
    path = Path(path)
    info, backend = _probe(path, count_limit=_count_limit(offset, duration))
    sr = info.sr if sr is None else sr
    repairs = SampleRepairs()
    blocks = list(_decode(path, info, backend, sr, offset, duration, mono, block_duration=60.0, repairs=repairs))
    channels = 1 if mono else info.channels
    if blocks:
        samples = np.concatenate(blocks, axis=0)
    else:
        samples = np.zeros((0, channels), np.float32)
    if len(samples) == 0:
        raise EmptyAudioError(path, _nothing_read(offset))
    samples = samples[:, 0] if mono else np.ascontiguousarray(samples.T)
    source_duration = None if info.lower_bound else info.duration
    return Audio(samples, int(sr), samples.shape[-1] / sr, source_duration, repairs)


def stream_audio(
    path: str | os.PathLike,
    sr: int | None,
    *,
    block_duration: float = 60.0,
    offset: float = 0.0,
    duration: float | None = None,
    repairs: SampleRepairs | None = None,
) -> Iterator[np.ndarray]:
    """Decode a file block by block as mono float32 at ``sr``, in bounded memory.

    The file is opened and checked at once, so that errors about the file itself are raised by
    this call rather than by the first ``next()``; damage found later in the file is raised
    while iterating. Concatenating the blocks gives exactly
    ``load_audio(path, sr, offset=offset, duration=duration).samples``.

    Parameters
    ----------
    path : str or path-like
        Any file :func:`load_audio` can read.
    sr : int or None
        Target sample rate in Hz; ``None`` keeps the file's own rate.
    block_duration : float, default 60.0
        Seconds of source audio decoded per step. Blocks come out with about
        ``block_duration * sr`` samples (the first and last may be shorter, since the
        resampler holds back a few milliseconds).
    offset, duration : float
        As in :func:`load_audio`.
    repairs : SampleRepairs, optional
        Counts of repaired samples (NaN, inf, absurdly large) are added to it while iterating.

    Yields
    ------
    np.ndarray, float32, shape (n,)
    """
    if block_duration <= 0:
        raise UsageError(f"block_duration must be positive, got {block_duration}")
    audio = open_audio(path, max_duration=_count_limit(offset, duration))
    return audio.blocks(sr, offset=offset, duration=duration, block_duration=block_duration, repairs=repairs)


#: Containers in which FFmpeg finds a time by seeking (an index, a table of contents or page
#: granule positions) rather than by decoding from the start.
_SEEKABLE_WITH_FFMPEG = frozenset({"mp3", "m4a", "mp4", "mov", "ogg", "flac", "matroska", "webm"})


class AudioFile:
    """An audio file opened and checked once, whose parts are then decoded as often as needed.

    Made by :func:`open_audio`. :attr:`info` is what the header says; :meth:`blocks` decodes
    any range of it, mono, at any rate, without probing the file again.
    """

    def __init__(self, path: Path, info: AudioInfo, backend: str):
        self.path, self.info, self.backend = path, info, backend
        self._opened = None

    def __enter__(self) -> "AudioFile":
        """Keep the file open across :meth:`blocks` calls, for many short reads (FFmpeg's first
        seek in a freshly opened MP3 costs five times the later ones)."""
        if self.backend == "pyav" and self._opened is None:
            import av

            try:
                self._opened = av.open(str(self.path))
            except av.FFmpegError as error:
                raise CorruptAudioError(self.path, error.strerror) from None
        return self

    def __exit__(self, *exc) -> None:
        if self._opened is not None:
            self._opened, opened = None, self._opened
            opened.close()

    @property
    def seekable(self) -> bool:
        """Whether a range far into the file is reached by seeking rather than by decoding up to it."""
        return self.backend == "soundfile" or self.info.format in _SEEKABLE_WITH_FFMPEG

    def blocks(self, sr: int | None, *, offset: float = 0.0, duration: float | None = None,
               block_duration: float = 60.0, repairs: SampleRepairs | None = None) -> Iterator[np.ndarray]:
        """:func:`stream_audio`'s blocks of this file; a bad request or an offset past the end raises at once."""
        sr = self.info.sr if sr is None else sr
        decoded = _decode(self.path, self.info, self.backend, sr, offset, duration, True, block_duration, repairs,
                          self._opened)
        return _mono_blocks(self.path, decoded, offset)


def open_audio(path: str | os.PathLike, *, max_duration: float | None = None) -> AudioFile:
    """Open and check an audio file: its header is read and a backend chosen, nothing decoded.

    Parameters
    ----------
    path : str or path-like
        Any file :func:`load_audio` can read.
    max_duration : float, optional
        As in :func:`audio_info`: how far a file whose header states no length is counted.

    Returns
    -------
    AudioFile

    Raises
    ------
    AudioError
        The subclass names the cause (missing, not audio, corrupt, empty, unsupported).
    """
    path = Path(path)
    info, backend = _probe(path, count_limit=max_duration)
    return AudioFile(path, info, backend)


def _count_limit(offset, duration) -> float | None:
    """How far a file without a stated length need be counted to serve ``[offset, offset + duration)``."""
    if duration is None or not (np.isfinite(offset) and offset >= 0 and duration > 0):
        return None  # bad values are reported by _check_request
    return offset + duration + 1.0


def _mono_blocks(path: Path, blocks: Iterator[np.ndarray], offset: float) -> Iterator[np.ndarray]:
    produced = False
    for block in blocks:
        produced = True
        yield block[:, 0]
    if not produced:
        raise EmptyAudioError(path, _nothing_read(offset))


def _nothing_read(offset: float) -> str:
    return f"nothing to read from {offset:g} s on" if offset else "no samples decoded"


def _decode(path, info, backend, sr, offset, duration, mono, block_duration, repairs=None,
            opened=None) -> Iterator[np.ndarray]:
    """Check the request, then return an iterator of ``(n, channels)`` float32 blocks at ``sr``."""
    _check_request(sr, offset, duration)
    if info.duration and offset >= info.duration:
        raise EmptyAudioError(path, f"offset {offset:g} s is past the end ({info.duration:.3f} s)")
    start = int(round(offset * info.sr))
    stop = None if duration is None else start + max(1, int(round(duration * info.sr)))
    block_frames = max(1, int(round(block_duration * info.sr)))
    native = _read_complete(path, info, backend, start, stop, block_frames, repairs, opened)
    return convert_blocks(native, info.sr, sr, 1 if mono else info.channels, mono, repairs)


def _check_request(sr, offset, duration) -> None:
    if not (isinstance(sr, (int, np.integer)) and sr > 0):
        raise UsageError(f"sample rate must be a positive integer, got {sr!r}")
    check_sample_rate(sr, "sample rate")
    if not (offset >= 0 and np.isfinite(offset)):
        raise UsageError(f"offset must be zero or positive seconds, got {offset}")
    if duration is not None and not duration > 0:
        raise UsageError(f"duration must be positive seconds, got {duration}")


def _probe(path: Path, count_limit: float | None = None) -> tuple[AudioInfo, str]:
    """:func:`_find_backend`, refusing sample rates outside the range genrekit reads."""
    info, backend = _find_backend(path, count_limit)
    if not MIN_SAMPLE_RATE <= info.sr <= MAX_SAMPLE_RATE:
        raise UnsupportedAudioError(path, f"sample rate {info.sr} Hz is outside the rates genrekit reads "
                                          f"({MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz)")
    return info, backend


def _find_backend(path: Path, count_limit: float | None = None) -> tuple[AudioInfo, str]:
    """Find a backend that can read ``path`` and return its header information; a length that
    must be counted is counted up to ``count_limit`` seconds (see :func:`audio_info`)."""
    _check_file(path)
    if looks_like_text(path):  # every audio header has a zero byte or non-UTF-8 bytes early on
        raise NotAudioError(path, "looks like a text file")
    soundfile_problem, empty_header = None, False
    if not is_mpeg_audio(path):  # saves libsndfile's MP3 decoder printing to stderr
        try:
            with c_stderr_silenced():  # libmpg123 prints notes while probing non-MPEG bytes
                info = _soundfile_info(path)
        except sf.SoundFileError as error:
            soundfile_problem = _short(str(error))
        else:
            if 0 < info.frames < _UNKNOWN_LENGTH and info.format not in _FFMPEG_FORMATS:
                return info, "soundfile"
            # A valid header without frames is truly empty, or a stream libsndfile cannot
            # measure; a length "unknown" (FLAC STREAMINFO total samples 0) must be counted.
            # FFmpeg decides and counts.
            empty_header = info.frames == 0
    import av

    try:
        return _pyav_info(path, count_limit), "pyav"
    except CorruptAudioError:
        # FFmpeg also guesses formats from the file name, and then finds garbage in random bytes.
        if not has_audio_signature(path):
            raise NotAudioError(path, "unrecognised data") from None
        raise
    except av.FFmpegError as error:  # FFmpeg cannot make sense of the file either
        if empty_header:
            raise EmptyAudioError(path, "the header declares no samples") from None
        if not has_audio_signature(path):
            raise NotAudioError(path, "unrecognised data") from None
        # When libsndfile does not know the format (or, for some damaged MP3s, says the file
        # "does not exist"), FFmpeg's reason is the one that matters.
        sndfile_knows = soundfile_problem and not any(
            phrase in soundfile_problem for phrase in ("not recognised", "does not exist"))
        raise CorruptAudioError(path, soundfile_problem if sndfile_knows else error.strerror) from None


def _check_file(path: Path) -> None:
    if path.is_dir():
        raise AudioMissingError(path, "is a directory")
    try:
        status = path.stat()
    except FileNotFoundError:
        raise AudioMissingError(path) from None
    except OSError as error:
        raise AudioError(path, error.strerror) from None
    if not stat.S_ISREG(status.st_mode):  # a pipe or device could block a decoder for ever
        raise NotAudioError(path, "not a regular file")
    if status.st_size == 0:
        raise EmptyAudioError(path, "zero-length file")
    if not os.access(path, os.R_OK):
        raise AudioError(path, "permission denied")


def _soundfile_info(path: Path) -> AudioInfo:
    with sf.SoundFile(os.fsencode(path)) as handle:  # bytes: soundfile cannot encode a name that is not UTF-8
        info = AudioInfo(
            sr=handle.samplerate,
            channels=handle.channels,
            frames=handle.frames,
            duration=handle.frames / handle.samplerate,
            format=handle.format.lower(),
            codec=handle.subtype.lower(),
        )
    problem = truncation(path, info.format)
    if problem and info.duration < MIN_DECODABLE:
        raise CorruptAudioError(path, f"truncated: {problem}")
    return dataclasses.replace(info, truncated=problem) if problem else info


def _short(message: str) -> str:
    """libsndfile's message without its "Error opening '<path>': " or "Error : " prefix."""
    message = message.split("': ", 1)[-1].strip().rstrip(".")
    return message.removeprefix("Error : ")


def _read_soundfile(path: Path, info: AudioInfo, start: int, stop: int | None, block_frames: int):
    """Yield ``(n, channels)`` float32 blocks of native-rate frames ``[start, stop)``."""
    stop = info.frames if stop is None else min(stop, info.frames)
    position = start
    try:
        with sf.SoundFile(os.fsencode(path)) as handle:  # bytes: soundfile cannot encode a name that is not UTF-8
            if start:
                position = _seek(handle, start)
            while position < stop:
                want = min(block_frames, stop - position)
                block = handle.read(want, dtype="float32", always_2d=True)
                if len(block) == 0:
                    break
                position += len(block)
                yield block
                if len(block) < want:
                    break
    except sf.SoundFileError as error:
        raise CorruptAudioError(path, _short(str(error))) from None


def _seek(handle: sf.SoundFile, frame: int) -> int:
    """Move to ``frame``; in a file that cannot seek, read up to it instead."""
    try:
        return handle.seek(frame)
    except sf.SoundFileError:
        position = 0  # just opened, so still at the start
    while position < frame:
        skipped = len(handle.read(min(frame - position, 1 << 20), dtype="float32"))
        if skipped == 0:
            break
        position += skipped
    return position


def _pyav_info(path: Path, count_limit: float | None = None) -> AudioInfo:
    """Header information from FFmpeg; lets ``av.FFmpegError`` through when it cannot open the file.

    Without a duration in the header, samples are counted by decoding, at most a little past
    ``count_limit`` seconds when it is given (the result then has ``lower_bound=True``).
    """
    import av

    with av.open(str(path)) as container:
        stream = _audio_stream(path, container)
        context = stream.codec_context
        duration = None
        # a duration of 0 means "unknown" too: FFmpeg's Musepack SV8 demuxer states it so
        if stream.duration:
            duration = float(stream.duration * stream.time_base)
        elif container.duration:
            duration = container.duration / av.time_base
        names = container.format.name.split(",")
        suffix = path.suffix.lower().lstrip(".")
        sr = context.sample_rate
        info = AudioInfo(
            sr=sr,
            channels=context.channels,
            frames=0 if duration is None else int(round(duration * sr)),
            duration=0.0 if duration is None else duration,
            format=suffix if suffix in names else names[0],
            codec=context.codec.canonical_name,
        )
    if duration is None:
        # Raw streams without an index, Matroska without a duration, FLAC with an "unknown"
        # length: count the samples, in bounded memory, and no further than asked.
        stop = None if count_limit is None else int(count_limit * sr) + 1
        frames = sum(len(block) for block in _read_pyav(path, info, 0, stop, 1 << 16))
        lower_bound = stop is not None and frames >= stop
        info = AudioInfo(sr, info.channels, frames, frames / sr, info.format, info.codec, lower_bound)
    if info.frames <= 0:
        raise EmptyAudioError(path, "the audio stream has no samples")
    return info


def _audio_stream(path: Path, container):
    if not container.streams.audio:
        raise NotAudioError(path, "no audio stream")
    stream = container.streams.audio[0]
    if stream.codec_context is None:
        raise UnsupportedAudioError(path, "no decoder for its audio codec")
    if not stream.codec_context.sample_rate:
        raise CorruptAudioError(path, "the audio stream has no sample rate")
    return stream


def _read_pyav(path: Path, info: AudioInfo, start: int, stop: int | None, block_frames: int, opened=None):
    """Yield ``(n, channels)`` float32 blocks of native-rate frames ``[start, stop)``.

    Positions come from the frames' timestamps, so the result is sample-accurate after a seek.
    ``opened``: a container kept open by :class:`AudioFile` (it is sought, not reopened).
    """
    import av

    pending: list[np.ndarray] = []
    pending_frames = 0
    position = None
    try:
        with contextlib.nullcontext(opened) if opened is not None else av.open(str(path)) as container:
            stream = container.streams.audio[0]
            origin = stream.start_time or 0
            if start > 0 or opened is not None:
                target = max(0.0, start / info.sr - _SEEK_PREROLL)
                try:
                    container.seek(origin + int(target / stream.time_base), stream=stream, backward=True)
                except av.FFmpegError:
                    pass  # not seekable: decode from the start; timestamps still place the offset
            for frame in container.decode(stream):
                if position is None:
                    position = _frame_position(path, frame, origin, info.sr, seeking=start > 0)
                samples = _frame_to_float(path, frame, info.channels)
                begin, end = position, position + len(samples)
                position = end
                if end <= start:
                    continue
                samples = samples[max(0, start - begin): len(samples) if stop is None else max(0, stop - begin)]
                pending.append(samples)
                pending_frames += len(samples)
                if pending_frames >= block_frames:
                    yield np.concatenate(pending)
                    pending, pending_frames = [], 0
                if stop is not None and position >= stop:
                    break
    except av.FFmpegError as error:
        where = "" if position is None else f" at {position / info.sr:.2f} s"
        failure = CorruptAudioError(path, f"{error.strerror}{where}")
    else:
        failure = None
    if pending_frames:  # what decoded before a failure is still good audio
        yield np.concatenate(pending)
    if failure is not None:
        raise failure
    return start if position is None else position


def _read_complete(path: Path, info: AudioInfo, backend: str, start: int, stop: int | None, block_frames: int,
                   repairs: SampleRepairs | None, opened=None):
    """Yield ``(n, channels)`` blocks of frames ``[start, stop)`` through ``backend``, and judge
    where the data ends.

    A decoder that stops short of the declared length is not proof of damage (libsndfile stops
    early on some valid Ogg Vorbis files): the rest is asked of FFmpeg. What is still missing
    then is a real shortfall: a warning in ``repairs`` (the file is classified from what
    decodes), or :class:`CorruptAudioError` when less than :data:`MIN_DECODABLE` seconds decode
    (or half the request, if that is shorter).
    """
    expected = info.frames if stop is None else min(stop, info.frames)
    position, complaint = start, None
    try:
        reader = (_read_soundfile(path, info, start, stop, block_frames) if backend == "soundfile"
                  else _read_pyav(path, info, start, stop, block_frames, opened))
        for block in reader:
            position += len(block)
            yield block
    except CorruptAudioError as error:  # damage or a cut: what decoded before it stands
        complaint = error.detail
    if backend == "soundfile" and position < expected:
        position = yield from _read_rest_with_ffmpeg(path, info, position, expected, block_frames)
    # FFmpeg's length is an estimate for most containers: only a clear gap in one that states it counts
    exact = backend == "soundfile" or states_exact_length(path, info.format)
    short = position < expected - (0 if backend == "soundfile" else max(info.sr, 0.05 * info.frames))
    short = (exact and short) or (complaint is not None and position < expected)
    problem = info.truncated
    if short:
        problem = f"data ends at {position / info.sr:.2f} s of the {info.duration:.2f} s declared"
        problem += f" ({complaint})" if complaint else ""
    if short and (position - start) / info.sr < min(MIN_DECODABLE, (expected - start) / info.sr / 2):
        raise CorruptAudioError(path, f"truncated: {problem}")
    if problem and repairs is not None:
        repairs.truncated = problem


def _read_rest_with_ffmpeg(path: Path, info: AudioInfo, position: int, stop: int, block_frames: int):
    """Frames ``[position, stop)`` through FFmpeg, as far as it gets; returns where it stopped."""
    try:
        for block in _read_pyav(path, info, position, stop, block_frames):
            block = block[: stop - position]
            position += len(block)
            yield block
    except AudioError:
        pass  # FFmpeg cannot read this file either: the shortfall stands
    return position


def _frame_position(path: Path, frame, origin: int, sr: int, *, seeking: bool) -> int:
    if frame.pts is None:
        if seeking:
            raise UnsupportedAudioError(path, "cannot seek in a stream without timestamps")
        return 0
    return int(round((frame.pts - origin) * frame.time_base * sr))


def _frame_to_float(path: Path, frame, channels: int) -> np.ndarray:
    """An FFmpeg audio frame as ``(n, channels)`` float32 in [-1, 1]."""
    if len(frame.layout.channels) != channels:
        raise UnsupportedAudioError(path, "the number of channels changes within the stream")
    data = frame.to_ndarray()
    data = data.T if frame.format.is_planar else data.reshape(-1, channels)
    if data.dtype == np.uint8:
        return (data.astype(np.float32) - 128.0) / 128.0
    if np.issubdtype(data.dtype, np.integer):
        return data.astype(np.float32) / float(2 ** (8 * data.dtype.itemsize - 1))
    return data.astype(np.float32)
