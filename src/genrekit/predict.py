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
    parts = [
        (batch, *classify_segments(model, batch.samples))
        for batch in _segment_batches(model, audio, sr, offset=offset, duration=max_duration, batch_size=batch_size)
    ]
    if not parts:
        raise GenrekitError(f"{audio}: no audio in the requested range")
    path = str(audio) if isinstance(audio, (str, os.PathLike)) else None
    return summarize(
        model, path,
        starts=np.concatenate([p[0].starts for p in parts]),
        ends=np.concatenate([p[0].ends for p in parts]),
        probabilities=np.concatenate([p[1] for p in parts]),
        silent=np.concatenate([p[2] for p in parts]),
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
              segments=False) -> Prediction:
    """Aggregate one file's segment probabilities into a :class:`Prediction`."""
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
        uncertain=confidence < UNCERTAIN_CONFIDENCE or agreement < UNCERTAIN_AGREEMENT,
        short=short,
        agreement=agreement,
        model=model.name,
    )


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
) -> Iterator[dict]:
    """Classify many files; yield each file's JSON record in input order.

    Records are ``Prediction.to_dict()`` or ``{"path", "error"}`` for a file that failed, so
    one bad file never stops the batch. With ``workers > 0``, decoding, resampling and
    segmentation run in that many worker processes while this process runs the network on
    batches of ``batch_size`` segments gathered across files.
    """
    _check_options(top_k, aggregate)
    options = dict(top_k=top_k, aggregate=aggregate, segments=segments)
    decode = partial(
        decode_segments, sr=model.sample_rate, window=model.window, hop=model.hop,
        last=model.spec["segment"].get("last", "pad"), offset=offset, duration=max_duration,
    )
    decoded = _decode_in_workers(collect_audio_files(paths), decode, workers)
    pending: list[tuple[str, object]] = []  # (path, Segments) waiting for the network
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
        pending.append((path, result))
        n_waiting += len(result.samples)
        if n_waiting >= batch_size:
            yield from _run_pending(model, pending, options)
            pending, n_waiting = [], 0
    yield from _run_pending(model, pending, options)


def decode_segments(path, *, sr, window, hop, last, offset, duration):
    """Worker job: decode ``path`` and cut it into windows; ``"stream"`` for very long files, or an error message."""
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
        return dataclasses.replace(segs, starts=segs.starts + offset, ends=segs.ends + offset)
    except GenrekitError as exc:
        return str(exc)
    except Exception as exc:  # noqa: BLE001 - a decoder bug on one file must not end the batch
        return f"{path}: cannot decode ({type(exc).__name__}: {exc})"


def _decode_in_workers(jobs, decode, workers: int):
    """Yield ``(path, decode(path) or problem)`` in input order, decoding ahead in worker processes."""
    if workers <= 0:
        for path, problem in jobs:
            yield path, (f"{path}: {problem}" if problem else decode(path))
        return
    import multiprocessing
    from collections import deque
    from concurrent.futures import ProcessPoolExecutor

    # forkserver: workers must not inherit this process's torch threads
    context = multiprocessing.get_context("forkserver")
    ahead = deque()
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        for path, problem in jobs:
            ahead.append((path, problem if problem else pool.submit(decode, path)))
            # a bounded look-ahead keeps memory flat on libraries of thousands of files
            while len(ahead) > 2 * workers:
                yield _resolve(*ahead.popleft())
        while ahead:
            yield _resolve(*ahead.popleft())


def _resolve(path, job):
    if isinstance(job, str):
        return path, f"{path}: {job}"
    try:
        return path, job.result()
    except Exception as exc:  # noqa: BLE001 - a crashed worker is reported per file
        return path, f"{path}: cannot decode ({type(exc).__name__}: {exc})"


def _run_pending(model, pending, options) -> Iterator[dict]:
    """Run the network once over all pending files' segments and yield their records."""
    if not pending:
        return
    probabilities, silent = classify_segments(model, np.concatenate([segs.samples for _, segs in pending]))
    first = 0
    for path, segs in pending:
        part = slice(first, first + len(segs.samples))
        first = part.stop
        yield summarize(model, str(path), starts=segs.starts, ends=segs.ends,
                        probabilities=probabilities[part], silent=silent[part], **options).to_dict()


def _predict_one_streamed(model, path, offset, max_duration, options) -> dict:
    try:
        return predict_audio(model, path, offset=offset, max_duration=max_duration, **options).to_dict()
    except GenrekitError as exc:
        return error_record(path, exc)
