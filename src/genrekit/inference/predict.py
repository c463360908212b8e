"""One file or waveform through a model: segments -> calibrated probabilities -> track decision
(:class:`Prediction`), with silence, not-music, short files and disagreement flagged.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import numpy as np

from genrekit.audio.levels import SILENCE_DBFS, rms_dbfs
from genrekit.audio.windows import DEFAULT_MAX_WINDOWS, read_windows
from genrekit.errors import GenrekitError, UsageError
from genrekit.inference.aggregate import aggregate_probabilities, check_aggregation
from genrekit.inference.taggram import detect_not_music, file_styles, tag_row_width

#: Below this calibrated top probability, or this share of segments agreeing with the track's
#: genre, a prediction is flagged ``uncertain``.
UNCERTAIN_CONFIDENCE = 0.5


UNCERTAIN_AGREEMENT = 0.5


#: Largest number of windows sent through the network at once (bounds activation memory).
MAX_NETWORK_BATCH = 64


@dataclass
class SegmentPrediction:
    """The result for one window of a file (``Prediction.segments``).

    Attributes
    ----------
    start, end : float
        Seconds from the start of the file; ``end`` is the end of the real audio (a padded last
        window ends early).
    genre : str or None
        The window's most probable genre; None when it is silent or not music.
    probabilities : dict of str to float or None
        Calibrated probability of every label; None for a silent window.
    silent : bool
        Quieter than :data:`~genrekit.audio.levels.SILENCE_DBFS`: not classified.
    not_music : bool
        Not music (speech, noise, ...): ``genre`` is None, ``probabilities`` are still given. Only
        models with a not-music detector set it.
    """
    start: float
    end: float
    genre: str | None
    probabilities: dict[str, float] | None
    silent: bool = False
    #: The segment is not music (speech, noise, ...): ``genre`` is None, ``probabilities`` are
    #: still given. Only models with a not-music detector set it.
    not_music: bool = False

    def to_dict(self) -> dict:
        """The window's JSON object, as ``genrekit predict --segments --format json`` writes it.

        Returns
        -------
        dict
            ``start``, ``end`` (rounded to ms), ``genre``, ``probabilities``; ``silent`` and
            ``not_music`` only when true.
        """
        out = {"start": round(self.start, 3), "end": round(self.end, 3), "genre": self.genre,
               "probabilities": self.probabilities}
        if self.silent:
            out["silent"] = True
        if self.not_music:
            out["not_music"] = True
        return out


@dataclass
class Prediction:
    """The result for one file: genre, calibrated confidence, top-k and optional timeline.

    Attributes
    ----------
    path : str or None
        The file; None for an array.
    genre : str or None
        None when the whole file is silent (``silent``) or is not music (``not_music``).
    confidence : float
        Calibrated probability of ``genre`` (mean over its music windows), in [0, 1]; 0 without a
        genre.
    top : list of (str, float)
        The ``top_k`` most probable genres and their track-level probabilities (vote shares for
        ``aggregate="vote"``), highest first.
    duration : float
        Seconds of audio classified.
    segments : list of SegmentPrediction or None
        The per-window timeline, when asked for.
    uncertain : bool
        Low confidence, disagreeing windows, under half a window of audio, or no genre.
    silent : bool
        Every window is silent.
    short : bool
        The file was shorter than one window and was padded.
    agreement : float
        Share of music windows whose own genre is ``genre``.
    model : str or None
        The model's name.
    extra : dict
        Room for callers' fields (not written by ``to_dict``).
    warnings : list of str
        What was wrong with the input and repaired (e.g. NaN samples replaced by 0).
    not_music : bool
        At least the model's ``file_fraction`` of the windows are not music (only models with a
        not-music detector decide this).
    not_music_fraction : float or None
        Share of the counted windows that are not music (None: no detector, or all silent).
    styles : list of (str, float) or None
        When asked for: the genre-like MSD tags of the file with their mean probability, highest
        first.
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
    #: What was wrong with the input and repaired (e.g. NaN samples replaced by 0).
    warnings: list[str] = field(default_factory=list)
    not_music: bool = False
    #: Share of the file's counted segments that are not music (None: no detector, or all silent).
    not_music_fraction: float | None = None
    styles: list[tuple[str, float]] | None = None

    def to_dict(self) -> dict:
        """The file's JSON object, as ``genrekit predict --format json`` writes it.

        Returns
        -------
        dict
            ``path``, ``genre``, ``confidence``, ``top`` (``[{"genre", "probability"}]``),
            ``duration``, ``uncertain``; ``silent``, ``short``, ``not_music``, ``styles``,
            ``segments`` and ``warnings`` only when set.
        """
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
        if self.not_music:
            out["not_music"] = True
        if self.styles is not None:
            out["styles"] = [{"style": s, "score": round(float(v), 6)} for s, v in self.styles]
        if self.segments is not None:
            out["segments"] = [s.to_dict() for s in self.segments]
        if self.warnings:
            out["warnings"] = list(self.warnings)
        return out


def error_record(path, error: Exception | str) -> dict:
    """The JSON record of a file that failed.

    Parameters
    ----------
    path : str or path-like
    error : Exception or str
        What went wrong (its one-line message).

    Returns
    -------
    dict
        ``{"path": str, "error": str}``.
    """
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
    styles: bool = False,
    max_windows: int = DEFAULT_MAX_WINDOWS,
) -> Prediction:
    """Classify one file path or waveform with a :class:`~genrekit.inference.model.GenreModel`.

    Parameters
    ----------
    audio : path, np.ndarray or iterator of np.ndarray
        A file, samples ``(n,)`` / ``(channels, n)`` at ``sr`` Hz, or an iterator of such blocks;
        read by :func:`genrekit.audio.windows.read_windows` (long files use bounded memory).
    top_k : int
        How many genres to list in ``Prediction.top`` (default 3).
    aggregate : {"mean", "vote"}
        Segment-to-track aggregation: mean probability (default) or majority vote.
    segments : bool
        Include the per-segment timeline in the result.
    offset, max_duration : float
        Classify only ``[offset, offset + max_duration)`` seconds of the audio.
    styles : bool
        Also give the file's styles (``Prediction.styles``); needs a model whose feature is the
        MSD_musicnn taggram (the default model), else :class:`UsageError`.
    max_windows : int, default DEFAULT_MAX_WINDOWS
        The window budget: classify at most this many windows, spread evenly over the audio
        (only those are decoded where the format can seek); 0 classifies every window.
        ``segments=True`` always classifies every window.

    Samples that are NaN, infinite or absurdly large (in a file or an array) are repaired
    before any feature is computed, and said so in ``Prediction.warnings``. Arrays may also be
    ``(n, channels)`` (as ``soundfile.read`` returns them) and integer PCM (scaled to ±1).

    Returns
    -------
    Prediction

    Raises
    ------
    UsageError
        Bad options (negative or non-finite ``offset``, non-positive ``max_duration`` or
        ``sr``, arrays of an unusable dtype or shape).
    GenrekitError
        Audio that cannot be classified.
    """
    _check_options(top_k, aggregate)
    check_styles(model, styles)
    offset, max_duration = _check_range(offset, max_duration)
    if not (isinstance(batch_size, (int, np.integer)) and batch_size > 0):
        raise UsageError(f"batch_size must be a positive integer, got {batch_size!r}")
    is_path = isinstance(audio, (str, os.PathLike))
    windows = read_windows(audio, model.sample_rate, source_sr=None if is_path else sr, window=model.window,
                           hop=model.hop, last=model.segment.last, offset=offset, duration=max_duration,
                           max_windows=0 if segments else max_windows, batch_size=batch_size)
    # keep only times and probabilities: holding every batch's samples would cost the whole
    # decoded file in memory (230 MB per hour at 16 kHz)
    parts = [(batch.starts, batch.ends, *classify_segments(model, batch.samples)) for batch in windows]
    if not parts:
        raise GenrekitError(f"{audio if is_path else 'array'}: no audio in the requested range")
    return summarize(
        model, str(audio) if is_path else None,
        warnings=[windows.repairs.describe()] if windows.repairs else None,
        duration=windows.duration,
        starts=np.concatenate([p[0] for p in parts]),
        ends=np.concatenate([p[1] for p in parts]),
        probabilities=np.concatenate([p[2] for p in parts]),
        silent=np.concatenate([p[3] for p in parts]),
        taggram=None if parts[0][4] is None else np.concatenate([p[4] for p in parts]),
        top_k=top_k, aggregate=aggregate, segments=segments, styles=styles,
    )


def _check_options(top_k: int, aggregate: str) -> None:
    if not (isinstance(top_k, (int, np.integer)) and top_k >= 1):
        raise UsageError(f"top_k must be an integer of at least 1, got {top_k!r}")
    check_aggregation(aggregate)


def check_styles(model, styles: bool) -> None:
    """Refuse styles asked of a model that does not compute the MSD taggram.

    Parameters
    ----------
    model : GenreModel
    styles : bool
        Whether styles are asked for.

    Raises
    ------
    UsageError
        ``styles`` is true and ``model.gives_taggram`` is not.
    """
    if styles and not model.gives_taggram:
        raise UsageError(f"styles need a model whose feature is the MSD_musicnn taggram (such as the "
                         f"default model); {model.name} uses {model.spec.feature}")


def _check_range(offset, max_duration) -> tuple[float, float | None]:
    """``offset`` and ``max_duration`` as floats, or a :class:`UsageError` saying what is wrong."""
    try:
        offset = float(offset)
        max_duration = None if max_duration is None else float(max_duration)
    except (TypeError, ValueError):
        raise UsageError(f"offset and max_duration must be numbers of seconds, "
                         f"got {offset!r} and {max_duration!r}") from None
    if not (math.isfinite(offset) and offset >= 0):
        raise UsageError(f"offset must be zero or positive seconds, got {offset}")
    if max_duration is not None and not (math.isfinite(max_duration) and max_duration > 0):
        raise UsageError(f"max_duration must be positive seconds (or None for all), got {max_duration}")
    return offset, max_duration


def classify_segments(model, samples: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Calibrated probabilities (and the taggram) of audio windows; silent windows are skipped.

    Silent windows are not run through the model; their probability (and taggram) rows are NaN.

    Parameters
    ----------
    model : GenreModel
    samples : np.ndarray
        Windows at ``model.sample_rate`` Hz, float32, shape ``(n, window_samples)``.

    Returns
    -------
    probabilities : np.ndarray
        float64, shape ``(n, n_classes)``.
    silent : np.ndarray
        bool, shape ``(n,)``.
    taggram : np.ndarray or None
        float64, shape ``(n, 50)``; None unless ``model.gives_taggram``.

    Raises
    ------
    GenrekitError
        When the model gives a non-finite probability: such a number must never become a
        genre, a confidence or a tag decision.
    """
    silent = rms_dbfs(samples) < SILENCE_DBFS
    probabilities = np.full((len(samples), len(model.labels)), np.nan)
    taggram = np.full((len(samples), tag_row_width(model.not_music)), np.nan) if model.gives_taggram else None
    voiced = np.flatnonzero(~silent)
    for first in range(0, len(voiced), MAX_NETWORK_BATCH):
        rows = voiced[first:first + MAX_NETWORK_BATCH]
        probabilities[rows], tags = model.segment_outputs(samples[rows])
        if taggram is not None:
            taggram[rows] = tags
    if not np.isfinite(probabilities[voiced]).all() or (taggram is not None and not np.isfinite(taggram[voiced]).all()):
        raise GenrekitError("the model gave non-finite probabilities for this audio (not classified)")
    return probabilities, silent, taggram


def summarize(model, path, *, starts, ends, probabilities, silent, taggram=None, top_k=3, aggregate="mean",
              segments=False, duration: float | None = None, warnings=None, styles=False) -> Prediction:
    """Aggregate one file's window probabilities into a :class:`Prediction`.

    Windows that are not music are left out of the genre (a podcast with a music intro gets the
    intro's genre); a file that is not music as a whole gets no genre.

    Parameters
    ----------
    model : GenreModel
    path : str or None
        The file, for the record.
    starts, ends : np.ndarray
        float, shape ``(n,)``: each window's start and end of real audio, in seconds.
    probabilities : np.ndarray
        Shape ``(n, n_classes)``, from :func:`classify_segments` (NaN rows for silent windows).
    silent : np.ndarray
        bool, shape ``(n,)``.
    taggram : np.ndarray or None
        Shape ``(n, 50 + extra)``: each window's MSD taggram (the first 50 columns) and what else
        the not-music detector reads (:meth:`GenreModel.segment_outputs`); feeds the detector, if
        the model has one, and ``styles``.
    top_k : int, default 3
    aggregate : {"mean", "vote"}, default "mean"
    segments : bool, default False
        Include the per-window timeline.
    duration : float or None
        Seconds of audio classified; default the span the windows cover.
    warnings : list of str or None
        Lines about repaired input, for ``Prediction.warnings``.
    styles : bool, default False
        Also give the file's styles.

    Returns
    -------
    Prediction

    Raises
    ------
    UsageError
        Styles asked of a model without the MSD taggram, or without ``taggram``.
    """
    warnings = list(warnings or [])
    check_styles(model, styles)
    if styles and taggram is None:
        raise UsageError("styles need the segments' MSD taggram (from classify_segments)")
    if duration is None:
        duration = float(ends.max() - starts.min()) if len(ends) else 0.0
    short = duration < model.window - 1e-6
    not_music, fraction = np.zeros(len(silent), bool), None
    if model.not_music is not None and taggram is not None:
        not_music, fraction = detect_not_music(model.not_music, taggram, silent, ends - starts, model.window)
        fraction = None if math.isnan(fraction) else fraction
    timeline = _timeline(model.labels, starts, ends, probabilities, silent, not_music) if segments else None
    file_not_music = fraction is not None and fraction >= float(model.not_music["file_fraction"])
    music = ~silent & ~not_music
    if not music.any():  # keep the genre of a file below the fraction whose every segment is flagged
        music = ~silent
    style_list = None
    if styles:
        style_list = [] if file_not_music or silent.all() else file_styles(taggram[music], (ends - starts)[music])
    if silent.all() or file_not_music:
        return Prediction(path=path, genre=None, confidence=0.0, top=[], duration=duration,
                          segments=timeline, silent=bool(silent.all()), not_music=file_not_music,
                          not_music_fraction=fraction, short=short, uncertain=True, model=model.name,
                          warnings=warnings, styles=style_list)
    weights = (ends - starts)[music] / model.window
    mean = aggregate_probabilities(probabilities[music], "mean", weights=weights)
    track = mean if aggregate == "mean" else aggregate_probabilities(probabilities[music], aggregate, weights=weights)
    order = np.argsort(track)[::-1]
    best = int(order[0])
    agreement = float(np.mean(probabilities[music].argmax(axis=1) == best))
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
        warnings=warnings,
        not_music_fraction=fraction,
        styles=style_list,
    )


def _timeline(labels, starts, ends, probabilities, silent, not_music) -> list[SegmentPrediction]:
    out = []
    for start, end, probs, quiet, other in zip(starts, ends, probabilities, silent, not_music):
        if quiet:
            out.append(SegmentPrediction(float(start), float(end), None, None, silent=True))
            continue
        out.append(SegmentPrediction(
            float(start), float(end), None if other else labels[int(np.argmax(probs))],
            {label: round(float(p), 6) for label, p in zip(labels, probs)}, not_music=bool(other),
        ))
    return out
