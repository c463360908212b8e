"""From audio to genre: segments -> model -> aggregation -> :class:`Prediction`.

``predict_audio`` handles one file or waveform; ``predict_files`` walks many inputs and yields
one result per file, turning each file's failure into an error record so a batch never stops.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from .aggregate import aggregate_probabilities
from .errors import AudioError, GenrekitError, UsageError

#: Segments quieter than this RMS level (dB relative to full scale) count as silence: they are
#: reported but not classified, because a model's answer on silence is noise.
SILENCE_DBFS = -60.0
#: Below this calibrated top probability, or this share of segments agreeing with the track's
#: genre, a prediction is flagged ``uncertain``.
UNCERTAIN_CONFIDENCE = 0.5
UNCERTAIN_AGREEMENT = 0.5
#: Largest number of windows sent through the network at once (bounds activation memory).
MAX_NETWORK_BATCH = 64


@dataclass
class SegmentPrediction:
    start: float
    end: float
    genre: str | None
    probabilities: dict[str, float] | None
    silent: bool = False

    def to_dict(self) -> dict:
        out = {"start": round(self.start, 3), "end": round(self.end, 3), "genre": self.genre,
               "probabilities": self.probabilities}
        if self.silent:
            out["silent"] = True
        return out


@dataclass
class Prediction:
    """The result for one file: genre, calibrated confidence, top-k and optional timeline.

    ``genre`` is ``None`` when the whole file is silent. ``uncertain`` is set when the confidence
    is low or the segments disagree; ``short`` when the file was shorter than one segment and
    was padded.
    """

    path: str | None
    genre: str | None
    confidence: float
    top: list[tuple[str, float]]
    duration: float
    segments: list[SegmentPrediction] | None = None
    uncertain: bool = False
    silent: bool = False
    short: bool = False
    agreement: float = 1.0
    model: str | None = None
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        out = {
            "path": self.path,
            "genre": self.genre,
            "confidence": round(float(self.confidence), 6),
            "top": [{"genre": g, "probability": round(float(p), 6)} for g, p in self.top],
            "duration": round(float(self.duration), 3),
            "uncertain": self.uncertain,
        }
        if self.silent:
            out["silent"] = True
        if self.short:
            out["short"] = True
        if self.segments is not None:
            out["segments"] = [s.to_dict() for s in self.segments]
        return out


def error_record(path, error: Exception | str) -> dict:
    """The JSON record of a file that failed: ``{"path", "error"}``."""
    return {"path": str(path), "error": str(error)}


def predict_audio(
    model,
    audio,
    sr: int | None = None,
    *,
    top_k: int = 3,
    aggregate: str = "mean",
    segments: bool = False,
    offset: float = 0.0,
    max_duration: float | None = None,
    batch_size: int = 16,
) -> Prediction:
    """Classify one file path or waveform with a :class:`~genrekit.classifier.GenreModel`.

    Parameters
    ----------
    audio : path or np.ndarray
        A file (decoded with :func:`genrekit.segments.stream_segments`, so long files use
        bounded memory) or samples ``(n,)`` / ``(channels, n)`` at ``sr`` Hz.
    top_k : int
        How many genres to list in ``Prediction.top`` (default 3).
    aggregate : {"mean", "vote"}
        Segment-to-track aggregation: mean probability (default) or majority vote.
    segments : bool
        Include the per-segment timeline in the result.
    offset, max_duration : float
        Classify only ``[offset, offset + max_duration)`` seconds of the audio.
    """
    _check_options(top_k, aggregate)
    # keep only times and probabilities: holding every batch's samples would cost the whole
    # decoded file in memory (230 MB per hour at 16 kHz)
    parts = [
        (batch.starts, batch.ends, *classify_segments(model, batch.samples))
        for batch in _segment_batches(model, audio, sr, offset=offset, duration=max_duration, batch_size=batch_size)
    ]
    if not parts:
        raise GenrekitError(f"{audio}: no audio in the requested range")
    path = str(audio) if isinstance(audio, (str, os.PathLike)) else None
    return summarize(
        model, path,
        duration=_audio_duration(audio, sr, offset, max_duration),
        starts=np.concatenate([p[0] for p in parts]),
        ends=np.concatenate([p[1] for p in parts]),
        probabilities=np.concatenate([p[2] for p in parts]),
        silent=np.concatenate([p[3] for p in parts]),
        top_k=top_k, aggregate=aggregate, segments=segments,
    )


def _check_options(top_k: int, aggregate: str) -> None:
    if top_k < 1:
        raise UsageError("top_k must be at least 1")
    if aggregate not in ("mean", "vote"):
        raise UsageError(f"aggregate must be 'mean' or 'vote', not {aggregate!r}")


def classify_segments(model, samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(probabilities (n, n_classes), silent (n,))`` for windows ``(n, window_samples)``.

    Silent windows are not run through the model; their probability rows are NaN.
    """
    silent = _rms_dbfs(samples) < SILENCE_DBFS
    probabilities = np.full((len(samples), len(model.labels)), np.nan)
    voiced = np.flatnonzero(~silent)
    for first in range(0, len(voiced), MAX_NETWORK_BATCH):
        rows = voiced[first:first + MAX_NETWORK_BATCH]
        probabilities[rows] = model.segment_probabilities(samples[rows]).numpy()
    return probabilities, silent


def summarize(model, path, *, starts, ends, probabilities, silent, top_k=3, aggregate="mean",
              segments=False, duration: float | None = None) -> Prediction:
    """Aggregate one file's segment probabilities into a :class:`Prediction`.

    ``duration`` is the seconds of audio classified (default: the span the segments cover).
    """
    if duration is None:
        duration = float(ends.max() - starts.min()) if len(ends) else 0.0
    short = duration < model.window - 1e-6
    timeline = _timeline(model.labels, starts, ends, probabilities, silent) if segments else None
    if silent.all():
        return Prediction(path=path, genre=None, confidence=0.0, top=[], duration=duration,
                          segments=timeline, silent=True, short=short, uncertain=True, model=model.name)
    voiced = ~silent
    weights = (ends - starts)[voiced] / model.window
    mean = aggregate_probabilities(probabilities[voiced], "mean", weights=weights)
    track = mean if aggregate == "mean" else aggregate_probabilities(probabilities[voiced], aggregate, weights=weights)
    order = np.argsort(track)[::-1]
    best = int(order[0])
    agreement = float(np.mean(probabilities[voiced].argmax(axis=1) == best))
    confidence = float(mean[best])
    return Prediction(
        path=path,
        genre=model.labels[best],
        confidence=confidence,
        top=[(model.labels[i], float(track[i])) for i in order[:top_k]],
        duration=duration,
        segments=timeline,
        # under half a window of audio is too little to judge, however sure the network sounds
        uncertain=(confidence < UNCERTAIN_CONFIDENCE or agreement < UNCERTAIN_AGREEMENT
                   or duration < model.window / 2),
        short=short,
        agreement=agreement,
        model=model.name,
    )


def _audio_duration(audio, sr, offset: float, max_duration: float | None) -> float:
    """Seconds of ``audio`` in ``[offset, offset + max_duration)``."""
    if isinstance(audio, (str, os.PathLike)):
        from .audio import audio_info

        total = audio_info(audio).duration
    else:
        total = np.shape(audio)[-1] / sr
    available = max(total - offset, 0.0)
    return available if max_duration is None else min(available, max_duration)


def _segment_batches(model, audio, sr, *, offset, duration, batch_size):
    from .segments import segment_samples, stream_segments

    options = dict(window=model.window, hop=model.hop, last=model.spec["segment"].get("last", "pad"))
    if isinstance(audio, (str, os.PathLike)):
        yield from stream_segments(audio, model.sample_rate, offset=offset, duration=duration,
                                   batch_size=batch_size, **options)
        return
    if sr is None:
        raise UsageError("sr is required when predicting from an array of samples")
    samples = np.asarray(audio, dtype=np.float32)
    if samples.ndim == 2:
        samples = samples.mean(axis=0)
    start = int(round(offset * sr))
    stop = None if duration is None else start + int(round(duration * sr))
    samples = samples[start:stop]
    if samples.size == 0:
        raise GenrekitError("no samples to classify")
    if sr != model.sample_rate:
        import soxr

        samples = soxr.resample(samples, sr, model.sample_rate).astype(np.float32)
    whole = segment_samples(samples, model.sample_rate, **options)
    for first in range(0, len(whole.samples), batch_size):
        part = slice(first, first + batch_size)
        yield type(whole)(samples=whole.samples[part], starts=whole.starts[part] + offset,
                          ends=whole.ends[part] + offset, padded=whole.padded[part])


def _rms_dbfs(samples: np.ndarray) -> np.ndarray:
    rms = np.sqrt(np.mean(np.square(samples, dtype=np.float64), axis=1))
    return 20 * np.log10(np.maximum(rms, 1e-10))


def _timeline(labels, starts, ends, probabilities, silent) -> list[SegmentPrediction]:
    out = []
    for start, end, probs, quiet in zip(starts, ends, probabilities, silent):
        if quiet:
            out.append(SegmentPrediction(float(start), float(end), None, None, silent=True))
            continue
        out.append(SegmentPrediction(
            float(start), float(end), labels[int(np.argmax(probs))],
            {label: round(float(p), 6) for label, p in zip(labels, probs)},
        ))
    return out


def collect_audio_files(inputs: Iterable[str | os.PathLike], recursive: bool = True) -> Iterator[tuple[str, str | None]]:
    """Expand files, folders (recursively) and glob patterns into ``(path, problem)`` pairs.

    Folders yield their audio files (by extension) in sorted order; symbolic-link loops are
    followed once and then reported. A missing input yields ``(input, "file not found")``
    so the caller can report it and go on.
    """
    import glob

    from .audio import AUDIO_EXTENSIONS

    for item in inputs:
        item = str(item)
        if os.path.isdir(item):
            yield from _walk_folder(item, AUDIO_EXTENSIONS, recursive)
        elif os.path.exists(item):
            yield item, None
        elif glob.has_magic(item):
            matches = sorted(glob.glob(item, recursive=True))
            if not matches:
                yield item, "no file matches this pattern"
            for match in matches:
                if os.path.isdir(match):
                    yield from _walk_folder(match, AUDIO_EXTENSIONS, recursive)
                else:
                    yield match, None
        else:
            yield item, "file not found"


def _walk_folder(root: str, extensions, recursive: bool) -> Iterator[tuple[str, str | None]]:
    seen_dirs: set[str] = set()
    for folder, dirs, files in os.walk(root, followlinks=True, onerror=None):
        real = os.path.realpath(folder)
        if real in seen_dirs:
            dirs[:] = []
            yield folder, "symbolic link loop (folder already visited)"
            continue
        seen_dirs.add(real)
        dirs.sort()
        if not recursive:
            dirs[:] = []
        for name in sorted(files):
            if name.startswith("."):
                continue
            if Path(name).suffix.lower() in extensions:
                yield os.path.join(folder, name), None


#: Files longer than this (seconds) are streamed in the main process instead of being decoded
#: whole by a worker, so memory stays bounded whatever the input.
STREAM_LONGER_THAN = 600.0


def predict_files(
    paths: Iterable[str | os.PathLike],
    model,
    *,
    workers: int = 0,
    batch_size: int = 32,
    top_k: int = 3,
    aggregate: str = "mean",
    segments: bool = False,
    offset: float = 0.0,
    max_duration: float | None = None,
    recursive: bool = True,
) -> Iterator[dict]:
    """Classify many files; yield each file's JSON record in input order.

    Records are ``Prediction.to_dict()`` or ``{"path", "error"}`` for a file that failed, so
    one bad file never stops the batch. With ``workers > 0``, decoding, resampling and
    segmentation run in that many worker processes while this process runs the network on
    batches of ``batch_size`` segments gathered across files. ``recursive=False`` takes only
    the files directly inside folders given in ``paths``.
    """
    yield from predict_found(
        collect_audio_files(paths, recursive=recursive), model, workers=workers, batch_size=batch_size,
        top_k=top_k, aggregate=aggregate, segments=segments, offset=offset, max_duration=max_duration,
    )


def predict_found(
    found: Iterable[tuple[str, str | None]],
    model,
    *,
    workers: int = 0,
    batch_size: int = 32,
    top_k: int = 3,
    aggregate: str = "mean",
    segments: bool = False,
    offset: float = 0.0,
    max_duration: float | None = None,
) -> Iterator[dict]:
    """:func:`predict_files` on ``(path, problem)`` pairs from :func:`collect_audio_files`.

    For callers that list the files first (to show a progress total); a pair with a problem
    comes out as that file's error record.
    """
    _check_options(top_k, aggregate)
    options = dict(top_k=top_k, aggregate=aggregate, segments=segments)
    decode = partial(
        decode_segments, sr=model.sample_rate, window=model.window, hop=model.hop,
        last=model.spec["segment"].get("last", "pad"), offset=offset, duration=max_duration,
    )
    decoded = _decode_in_workers(found, decode, workers)
    pending: list[tuple] = []  # (path, Segments, seconds) waiting for the network
    n_waiting = 0
    for path, result in decoded:
        if result == "stream":
            yield from _run_pending(model, pending, options)
            pending, n_waiting = [], 0
            yield _predict_one_streamed(model, path, offset, max_duration, options)
            continue
        if isinstance(result, str):
            if pending:  # keep input order: finish earlier files before reporting this one
                yield from _run_pending(model, pending, options)
                pending, n_waiting = [], 0
            yield error_record(path, result)
            continue
        pending.append((path, *result))
        n_waiting += len(result[0].samples)
        if n_waiting >= batch_size:
            yield from _run_pending(model, pending, options)
            pending, n_waiting = [], 0
    yield from _run_pending(model, pending, options)


def decode_segments(path, *, sr, window, hop, last, offset, duration):
    """Worker job: ``(Segments, seconds decoded)`` for ``path``; ``"stream"`` for very long files, or an error message."""
    from .audio import audio_info, load_audio
    from .segments import segment_samples

    try:
        info = audio_info(path)
        remaining = info.duration - offset if duration is None else min(duration, info.duration - offset)
        if remaining > STREAM_LONGER_THAN:
            return "stream"
        audio = load_audio(path, sr, offset=offset, duration=duration)
        if audio.samples.size == 0:
            return f"{path}: no audio in the requested range"
        segs = segment_samples(audio.samples, sr, window=window, hop=hop, last=last)
        return dataclasses.replace(segs, starts=segs.starts + offset, ends=segs.ends + offset), audio.duration
    except GenrekitError as exc:
        return str(exc)
    except Exception as exc:  # noqa: BLE001 - a decoder bug on one file must not end the batch
        return f"{path}: cannot decode ({type(exc).__name__}: {exc})"


#: Decoded files waiting for the network, beyond two per worker: a batch of 32 windows is about
#: 4 clips of 30 s. Worst case 6 files of 10 min (38 MB each at 16 kHz) with one worker.
DECODE_AHEAD = 4


def _decode_in_workers(jobs, decode, workers: int):
    """Yield ``(path, decode(path) or problem)`` in input order, decoding ahead in worker processes."""
    if workers <= 0:
        for path, problem in jobs:
            yield path, (f"{path}: {problem}" if problem else decode(path))
        return
    from collections import deque

    pool = _DecoderPool(decode, workers)
    ahead = deque()
    try:
        for path, problem in jobs:
            ahead.append((path, problem if problem else pool.submit(path)))
            # a bounded look-ahead keeps memory flat on libraries of thousands of files; it must
            # exceed one network batch of files, or workers idle while the network runs
            while len(ahead) > 2 * workers + DECODE_AHEAD:
                yield pool.resolve(*ahead.popleft())
        while ahead:
            yield pool.resolve(*ahead.popleft())
    finally:
        pool.close()


#: Modules the decoding workers need. The fork server imports them once, so a worker starts in
#: milliseconds instead of importing them itself (a second or more on a busy machine).
WORKER_MODULES = ["genrekit.predict", "genrekit.audio", "genrekit.segments"]


def start_decoders() -> None:
    """Start the fork server that decoding workers are forked from, with their modules loaded.

    Calling it early (``genrekit predict`` does, before loading the model) overlaps the server's
    start-up with other work; :func:`predict_files` starts it anyway when it has workers.
    """
    import multiprocessing
    from multiprocessing import forkserver

    # forkserver: workers must not inherit this process's torch threads
    multiprocessing.get_context("forkserver").set_forkserver_preload(WORKER_MODULES)
    forkserver.ensure_running()


class _DecoderPool:
    """Worker processes running ``decode``; a pool broken by a crashed worker is replaced.

    When a worker dies (a decoder crashing on a damaged file, the out-of-memory killer), every
    job still in that pool fails with ``BrokenProcessPool`` without saying which file was to
    blame. Each such file is then decoded again, alone, in a fresh pool: the innocent ones
    succeed, and a file that breaks a pool on its own is reported as crashing the decoder.
    """

    def __init__(self, decode, workers: int):
        self.decode, self.workers = decode, workers
        self.pool = self._start()

    def _start(self):
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        start_decoders()
        context = multiprocessing.get_context("forkserver")
        return ProcessPoolExecutor(max_workers=self.workers, mp_context=context, initializer=_quiet_stderr)

    def _restart(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.pool = self._start()

    def submit(self, path):
        from concurrent.futures.process import BrokenProcessPool

        try:
            job = self.pool.submit(self.decode, path)
        except BrokenProcessPool:
            self._restart()
            job = self.pool.submit(self.decode, path)
        job.pool = self.pool
        return job

    def resolve(self, path, job):
        """``(path, decoded segments or one-line problem)`` for a job from :meth:`submit`."""
        from concurrent.futures.process import BrokenProcessPool

        if isinstance(job, str):
            return path, f"{path}: {job}"
        try:
            return path, job.result()
        except BrokenProcessPool:
            pass
        except Exception as exc:  # noqa: BLE001 - a failed job is reported per file
            return path, f"{path}: cannot decode ({type(exc).__name__}: {exc})"
        if job.pool is self.pool:  # not replaced yet by an earlier job's failure
            self._restart()
        try:
            return path, self._alone(path)
        except BrokenProcessPool:
            return path, f"{path}: the audio decoder crashed on this file"

    def _alone(self, path):
        """Decode ``path`` with no other job in the pool, so a crash can only be its own."""
        alone = self._start()
        try:
            return alone.submit(self.decode, path).result()
        finally:
            alone.shutdown(wait=True)

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


def _quiet_stderr() -> None:
    """Worker initializer: send the process's stderr to /dev/null.

    Workers report problems through their results; C decoders write chatter such as mpg123's
    "Note: Illegal Audio-MPEG-Header" straight to file descriptor 2, which would break the
    one line per failed file that the batch prints.
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)


def _run_pending(model, pending, options) -> Iterator[dict]:
    """Run the network once over all pending files' segments and yield their records."""
    if not pending:
        return
    probabilities, silent = classify_segments(model, np.concatenate([segs.samples for _, segs, _ in pending]))
    first = 0
    for path, segs, duration in pending:
        part = slice(first, first + len(segs.samples))
        first = part.stop
        yield summarize(model, str(path), starts=segs.starts, ends=segs.ends, duration=duration,
                        probabilities=probabilities[part], silent=silent[part], **options).to_dict()


def _predict_one_streamed(model, path, offset, max_duration, options) -> dict:
    try:
        return predict_audio(model, path, offset=offset, max_duration=max_duration, **options).to_dict()
    except GenrekitError as exc:
        return error_record(path, exc)


def default_workers(n_files: int) -> int:
    """Decoding processes :func:`predict_files` should use for ``n_files`` files.

    None for a single file (starting a process costs more than it saves), else one per CPU
    core available to this process beyond the one that runs the network, at most 2: decoding
    is cheaper than inference, so more processes only compete with the network for cores.
    """
    if n_files <= 1:
        return 0
    return max(1, min(2, available_cores() - 1))


def default_threads(workers: int) -> int:
    """Threads for the network while ``workers`` processes decode: the cores they leave, at least 1.

    More threads than free cores make PyTorch's thread pool wait on the decoders (and on any
    other busy process): on a loaded machine that is several times slower than one thread.
    """
    return max(1, available_cores() - workers)


def available_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


#: The :func:`predict_files` options of ``genrekit tag``: results made with them are stored in
#: the library database under the bare model id, so ``predict --db`` and ``tag`` share them.
LIBRARY_OPTIONS = {"top_k": 3, "aggregate": "mean", "segments": False, "offset": 0.0, "max_duration": None}


def library_result_key(model, **options) -> str:
    """The model id under which results of ``model`` with ``options`` are stored in a library DB.

    Other options than :data:`LIBRARY_OPTIONS` are appended (``"<id>?top_k=5"``), so a run asking
    for more (a timeline, more genres, another excerpt) never reuses a result that lacks it.
    """
    changed = {key: value for key, value in options.items() if LIBRARY_OPTIONS.get(key, object()) != value}
    if not changed:
        return model.model_id
    return model.model_id + "?" + "&".join(f"{key}={value}" for key, value in sorted(changed.items()))


def predict_with_library(found, model, db, *, force: bool = False, stats: dict | None = None, **options) -> Iterator[dict]:
    """Like :func:`predict_found`, reusing and storing results in a library database.

    Parameters
    ----------
    found : iterable of (path, problem)
        From :func:`collect_audio_files`.
    db : genrekit.library.LibraryDB
        Files already predicted by this model with these options (and unchanged since) are
        answered from it without decoding; new results are committed one by one, so an
        interrupted run keeps what it finished.
    force : bool
        Recompute every file.
    stats : dict, optional
        Receives ``"reused"``: how many records came from the database.
    **options
        :func:`predict_files` options (``workers``, ``batch_size``, ``top_k``, ...).

    Records come in a different order from :func:`predict_found`: stored results first.
    """
    from .library import predict_with_cache

    files = []
    for path, problem in found:
        if problem:
            yield error_record(path, f"{path}: {problem}")
        else:
            files.append(path)
    key = library_result_key(model, **{k: v for k, v in options.items() if k in LIBRARY_OPTIONS})
    computing = []

    def compute(paths):
        computing.append(True)
        return predict_files(paths, model, **options)

    reused = 0
    for record in predict_with_cache(db, files, key, compute, force=force):
        reused += not computing
        yield record
    if stats is not None:
        stats["reused"] = reused
