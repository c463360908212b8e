"""From audio to genre: segments -> model -> aggregation -> :class:`Prediction`.

``predict_audio`` handles one file or waveform; ``predict_files`` walks many inputs and yields
one result per file, turning each file's failure into an error record so a batch never stops.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
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
        A file (decoded with :func:`genrekit.audio.stream_audio`, so long files use bounded
        memory) or samples ``(n,)`` / ``(channels, n)`` at ``sr`` Hz.
    top_k : int
        How many genres to list in ``Prediction.top`` (default 3).
    aggregate : {"mean", "vote"}
        Segment-to-track aggregation: mean probability (default) or majority vote.
    segments : bool
        Include the per-segment timeline in the result.
    offset, max_duration : float
        Classify only ``[offset, offset + max_duration)`` seconds of the audio.
    """
    if top_k < 1:
        raise UsageError("--top-k must be at least 1")
    batches = _segment_batches(model, audio, sr, offset=offset, duration=max_duration, batch_size=batch_size)
    starts, ends, probabilities, silent, padded_short = [], [], [], [], False
    for batch in batches:
        level = _rms_dbfs(batch.samples)
        quiet = level < SILENCE_DBFS
        probs = np.full((len(batch.samples), len(model.labels)), np.nan)
        if (~quiet).any():
            probs[~quiet] = model.segment_probabilities(batch.samples[~quiet]).numpy()
        starts.append(batch.starts)
        ends.append(batch.ends)
        probabilities.append(probs)
        silent.append(quiet)
        padded_short = padded_short or bool(batch.padded.any() and len(starts) == 1 and batch.ends[0] - batch.starts[0] < model.window - 1e-6)
    if not probabilities:
        raise GenrekitError(f"{audio}: no audio in the requested range")
    starts, ends = np.concatenate(starts), np.concatenate(ends)
    probabilities, silent = np.concatenate(probabilities), np.concatenate(silent)
    duration = float(ends.max() - starts.min()) if len(ends) else 0.0
    path = str(audio) if isinstance(audio, (str, os.PathLike)) else None
    timeline = _timeline(model.labels, starts, ends, probabilities, silent) if segments else None
    if silent.all():
        return Prediction(path=path, genre=None, confidence=0.0, top=[], duration=duration,
                          segments=timeline, silent=True, short=padded_short, uncertain=True,
                          model=model.name)
    voiced = ~silent
    weights = (ends - starts)[voiced] / model.window
    track = aggregate_probabilities(probabilities[voiced], aggregate, weights=weights)
    order = np.argsort(track)[::-1]
    best = int(order[0])
    agreement = float(np.mean(probabilities[voiced].argmax(axis=1) == best))
    confidence = float(track[best]) if aggregate == "mean" else float(
        aggregate_probabilities(probabilities[voiced], "mean", weights=weights)[best])
    return Prediction(
        path=path,
        genre=model.labels[best],
        confidence=confidence,
        top=[(model.labels[i], float(track[i])) for i in order[:top_k]],
        duration=duration,
        segments=timeline,
        uncertain=confidence < UNCERTAIN_CONFIDENCE or agreement < UNCERTAIN_AGREEMENT,
        short=padded_short,
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


def predict_files(paths: Iterable[str | os.PathLike], model, **options) -> Iterator[dict]:
    """Classify many files; yield each file's JSON record (``Prediction.to_dict()`` or ``{"path", "error"}``)."""
    for path, problem in collect_audio_files(paths):
        if problem:
            yield error_record(path, f"{path}: {problem}")
            continue
        try:
            yield predict_audio(model, path, **options).to_dict()
        except (AudioError, GenrekitError) as exc:
            yield error_record(path, exc)
