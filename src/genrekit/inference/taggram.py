"""What a model's MSD_musicnn taggram tells beyond the genre: not-music detection and styles.

Both read the 50 MSD_musicnn tag probabilities of each segment (``MSD_TAGS`` order) that a
model whose feature is ``{"name": "musicnn", "model": "MSD_musicnn", "layer": "taggram"}``
already computes on the way to its genre, so neither runs the network a second time.

**Not music.** A model file may carry a ``not_music`` block (docs/model-format.md), fitted by
``scripts/fit_not_music.py``: logistic regressions over what the one network pass that gives
the genre also gives of each non-silent segment. With ``p`` the taggram clipped to
[1e-6, 1 - 1e-6] and ``f(p) = [sqrt(p_1..p_50), log(sum p), entropy(p / sum p), logit(max p)]``
(53 values)::

    taggram stage:  f(p) . weight + bias > threshold                     (the block's own fields)
    layers stage:   x . weight + bias > threshold, x = [f(p), penultimate, descriptors]
                    (the optional ``layers_stage`` object; its ``inputs`` name what x holds)
    segment not music  <=>  either stage says so

``penultimate`` is musicnn's 200-unit penultimate layer, ``descriptors`` the classic
speech/music descriptors of the segment's samples (:mod:`genrekit.features.speechmusic`, 12).
The taggram stage knows GTZAN's music well (it is fitted on the 443 training tracks' taggrams);
the layers stage hears recorded voices, whose taggram alone looks like rap. The model computes
*tag rows*: the taggram (50 columns) followed by the layers stage's extra inputs
(:func:`tag_rows`), so they travel with the taggram through prediction.

The file is not music when at least ``file_fraction`` (0.8) of its full-length non-silent
segments are (when it has no full-length segment, i.e. is shorter than one window, its
non-silent segments weighted by their seconds of audio). Silent segments keep their own
``silent`` flag and do not count.

**Styles.** :data:`STYLE_TAGS` are the genre-like MSD tags; a file's styles are those whose
mean probability over its music segments reaches :data:`STYLE_THRESHOLD`.
"""

from __future__ import annotations

import numpy as np

from genrekit.errors import ModelError
from genrekit.features.musicnn.network import MSD_TAGS
from genrekit.features.speechmusic import DESCRIPTORS, speech_music_descriptors

#: The feature spec (name, model, layer) whose output is the MSD taggram.
TAGGRAM_FEATURE = {"name": "musicnn", "model": "MSD_musicnn", "layer": "taggram"}

N_FEATURES = len(MSD_TAGS) + 3
#: What a detector may read besides the taggram, and how many columns each adds to a tag row.
EXTRA_INPUTS = {"penultimate": 200, "descriptors": len(DESCRIPTORS)}
EPS = 1e-6
#: Seconds short of a full window that still count as full (sample rounding).
FULL_WINDOW_SLACK = 1e-3

#: Genre-like MSD_musicnn tags reported as styles, in the network's tag order. Left out: decades
#: (60s..00s, oldies), moods and qualities (beautiful, Mellow, chill, sad, happy, sexy, catchy,
#: party), voices and instruments (female/male vocalists, instrumental, guitar, acoustic).
STYLE_TAGS = (
    "rock", "pop", "alternative", "indie", "electronic", "dance", "alternative rock", "jazz",
    "metal", "chillout", "classic rock", "soul", "indie rock", "electronica", "folk", "punk",
    "blues", "hard rock", "ambient", "experimental", "Hip-Hop", "country", "easy listening",
    "funk", "electro", "heavy metal", "Progressive rock", "rnb", "indie pop", "House",
)
#: A style is reported when its mean tag probability over the file's music segments is at
#: least this. MSD_musicnn's tag probabilities are low in general (a clear rock song scores
#: "rock" about 0.5-0.7; a tag at 0.2 is well above its usual 0.01-0.05), see docs/model-card.md.
STYLE_THRESHOLD = 0.2
_STYLE_INDEX = np.array([MSD_TAGS.index(tag) for tag in STYLE_TAGS])


def computes_msd_taggram(feature_spec) -> bool:
    """Whether a model's feature output is the MSD_musicnn taggram itself.

    Parameters
    ----------
    feature_spec : dict, list or None
        The model's feature spec.

    Returns
    -------
    bool
    """
    return isinstance(feature_spec, dict) and all(feature_spec.get(k) == v for k, v in TAGGRAM_FEATURE.items())


def check_not_music_block(block, feature_spec, where) -> dict:
    """The ``not_music`` block of a model spec, validated.

    Parameters
    ----------
    block : object
        The block as read from the model file.
    feature_spec : dict, list or None
        The model's feature spec: must be the MSD taggram (:data:`TAGGRAM_FEATURE`).
    where : str or Path
        The model file, for error messages.

    Returns
    -------
    dict
        ``block`` itself.

    Raises
    ------
    ModelError
        Not an object, a model without the taggram, missing or non-finite weights, a
        ``file_fraction`` outside (0, 1], or a bad ``layers_stage``.
    """
    if not isinstance(block, dict):
        raise ModelError(f"{where}: not_music must be an object")
    if not computes_msd_taggram(feature_spec):
        raise ModelError(f"{where}: a not_music block needs a model whose feature is the MSD_musicnn "
                         f"taggram ({TAGGRAM_FEATURE}), not {feature_spec}")
    _check_stage(block, N_FEATURES, where, "not_music")
    try:
        fraction = float(block["file_fraction"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"{where}: not_music needs weight, bias, threshold and file_fraction ({exc})") from None
    if not 0 < fraction <= 1:
        raise ModelError(f"{where}: not_music file_fraction must be in (0, 1]")
    stage = block.get("layers_stage")
    if stage is not None:
        inputs = stage.get("inputs") if isinstance(stage, dict) else None
        if (not isinstance(inputs, list) or not inputs or inputs[0] != "taggram"
                or [i for i in inputs[1:] if i not in EXTRA_INPUTS] or len(set(inputs)) != len(inputs)):
            raise ModelError(f"{where}: not_music layers_stage inputs must be 'taggram' then any of "
                             f"{', '.join(EXTRA_INPUTS)} in that order, not {inputs!r}")
        _check_stage(stage, detector_size(block), where, "not_music layers_stage")
    return block


def _check_stage(stage: dict, size: int, where, name: str) -> None:
    try:
        weight = np.asarray(stage["weight"], dtype=np.float64)
        numbers = [float(stage[k]) for k in ("bias", "threshold")]
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"{where}: {name} needs weight, bias, threshold and file_fraction ({exc})") from None
    if weight.shape != (size,) or not np.isfinite(weight).all() or not np.isfinite(numbers).all():
        raise ModelError(f"{where}: {name} weight must be {size} finite numbers, with finite bias and threshold")


def taggram_features(taggram: np.ndarray) -> np.ndarray:
    """Taggram rows to the taggram stage's detector features (see the module docstring).

    Parameters
    ----------
    taggram : np.ndarray
        MSD taggram rows, shape ``(n, 50)``.

    Returns
    -------
    np.ndarray
        float64, shape ``(n, 53)``.

    Raises
    ------
    ValueError
        ``taggram`` is not ``(n, 50)``.
    """
    p = np.clip(np.asarray(taggram, dtype=np.float64), EPS, 1 - EPS)
    if p.ndim != 2 or p.shape[1] != len(MSD_TAGS):
        raise ValueError(f"expected (n, {len(MSD_TAGS)}) MSD taggram rows, got {p.shape}")
    total = p.sum(axis=1)
    q = p / total[:, None]
    top = p.max(axis=1)
    return np.column_stack([np.sqrt(p), np.log(total), -(q * np.log(q)).sum(axis=1), np.log(top) - np.log1p(-top)])


def extra_inputs(block: dict | None) -> list[str]:
    """What a ``not_music`` block's layers stage reads besides the taggram.

    Parameters
    ----------
    block : dict or None
        A model's ``not_music`` block, or None.

    Returns
    -------
    list of str
        Some of :data:`EXTRA_INPUTS` (``"penultimate"``, ``"descriptors"``); ``[]`` if none.
    """
    stage = None if block is None else block.get("layers_stage")
    return [] if stage is None else list(stage["inputs"][1:])


def detector_size(block: dict) -> int:
    """Weights of a block's layers stage: 53 for the taggram, plus its extra inputs.

    Parameters
    ----------
    block : dict
        A model's ``not_music`` block (:func:`check_not_music_block`).

    Returns
    -------
    int
    """
    return N_FEATURES + sum(EXTRA_INPUTS[name] for name in extra_inputs(block))


def tag_row_width(block: dict | None) -> int:
    """Columns of a model's tag rows: the taggram's 50 plus its layers stage's extra inputs.

    Parameters
    ----------
    block : dict or None
        A model's ``not_music`` block, or None.

    Returns
    -------
    int
    """
    return len(MSD_TAGS) + sum(EXTRA_INPUTS[name] for name in extra_inputs(block))


def tag_rows(layers: dict, samples: np.ndarray, block: dict | None, sr: int = 16000) -> np.ndarray:
    """Tag rows: the taggram, then each extra input ``block`` reads.

    Parameters
    ----------
    layers : dict
        The musicnn network's outputs for the windows (``taggram`` ``(n, 50)``, ``penultimate``
        ``(n, 200)``, as arrays).
    samples : np.ndarray
        The windows, shape ``(n, window_samples)`` at ``sr`` Hz (for the descriptors).
    block : dict or None
        A model's ``not_music`` block, or None.
    sr : int, default 16000
        Sample rate of ``samples`` in Hz.

    Returns
    -------
    np.ndarray
        float64, shape ``(n, tag_row_width(block))``.
    """
    parts = [np.asarray(layers["taggram"], np.float64)]
    for name in extra_inputs(block):
        if name == "penultimate":
            parts.append(np.asarray(layers["penultimate"], np.float64))
        else:
            parts.append(speech_music_descriptors(np.asarray(samples), sr))
    return np.hstack(parts)


def detector_features(block: dict, rows: np.ndarray) -> np.ndarray:
    """The layers stage's input vectors from tag rows.

    Parameters
    ----------
    block : dict
        A model's ``not_music`` block (:func:`check_not_music_block`).
    rows : np.ndarray
        Tag rows, shape ``(n, tag_row_width(block))`` (:func:`tag_rows`).

    Returns
    -------
    np.ndarray
        float64, shape ``(n, detector_size(block))``.
    """
    rows = np.asarray(rows, np.float64)
    return np.hstack([taggram_features(rows[:, :len(MSD_TAGS)]), rows[:, len(MSD_TAGS):tag_row_width(block)]])


def not_music_scores(block: dict, rows: np.ndarray) -> np.ndarray:
    """The taggram stage's logit per tag row (higher: less like music).

    Parameters
    ----------
    block : dict
        A model's ``not_music`` block (:func:`check_not_music_block`).
    rows : np.ndarray
        Tag rows, shape ``(n, tag_row_width(block))`` (:func:`tag_rows`).

    Returns
    -------
    np.ndarray
        float64, shape ``(n,)``.
    """
    rows = np.asarray(rows, np.float64)
    return taggram_features(rows[:, :len(MSD_TAGS)]) @ np.asarray(block["weight"], np.float64) + float(block["bias"])


def layers_scores(block: dict, rows: np.ndarray) -> np.ndarray:
    """The layers stage's logit per tag row (needs a ``layers_stage``).

    Parameters
    ----------
    block : dict
        A model's ``not_music`` block (:func:`check_not_music_block`).
    rows : np.ndarray
        Tag rows, shape ``(n, tag_row_width(block))`` (:func:`tag_rows`).

    Returns
    -------
    np.ndarray
        float64, shape ``(n,)``.
    """
    stage = block["layers_stage"]
    return detector_features(block, rows) @ np.asarray(stage["weight"], np.float64) + float(stage["bias"])


def not_music_flags(block: dict, rows: np.ndarray) -> np.ndarray:
    """Per tag row: is it not music by either stage?

    Parameters
    ----------
    block : dict
        A model's ``not_music`` block (:func:`check_not_music_block`).
    rows : np.ndarray
        Tag rows, shape ``(n, tag_row_width(block))`` (:func:`tag_rows`).

    Returns
    -------
    np.ndarray
        bool, shape ``(n,)``.
    """
    flags = not_music_scores(block, rows) > float(block["threshold"])
    if block.get("layers_stage") is not None:
        flags |= layers_scores(block, rows) > float(block["layers_stage"]["threshold"])
    return flags


def detect_not_music(block: dict, taggram: np.ndarray, silent: np.ndarray, seconds: np.ndarray,
                     window: float) -> tuple[np.ndarray, float]:
    """Which segments of one file are not music, and the share that decides the file.

    The file is not music when ``fraction >= block["file_fraction"]``.

    Parameters
    ----------
    block : dict
        A model's ``not_music`` block (:func:`check_not_music_block`).
    taggram : np.ndarray
        The segments' tag rows, shape ``(n, tag_row_width(block))``.
    silent : np.ndarray
        bool, shape ``(n,)``: silent segments are not judged.
    seconds : np.ndarray
        Seconds of real audio per segment, shape ``(n,)``.
    window : float
        The model's window length in seconds (full-length segments count).

    Returns
    -------
    not_music : np.ndarray
        bool, shape ``(n,)``.
    fraction : float
        Share of the counted segments that are not music; NaN when every segment is silent.
    """
    silent = np.asarray(silent, bool)
    seconds = np.asarray(seconds, np.float64)
    flagged = np.zeros(len(silent), bool)
    voiced = ~silent
    if not voiced.any():
        return flagged, float("nan")
    flagged[voiced] = not_music_flags(block, np.asarray(taggram)[voiced])
    counted = voiced & (seconds >= window - FULL_WINDOW_SLACK)
    if not counted.any():  # shorter than one window: the padded windows decide
        counted = voiced
    weights = np.maximum(seconds[counted], 0.0)
    if weights.sum() <= 0:
        weights = np.ones(counted.sum())
    return flagged, float((weights * flagged[counted]).sum() / weights.sum())


def file_styles(taggram: np.ndarray, weights: np.ndarray | None = None,
                threshold: float = STYLE_THRESHOLD) -> list[tuple[str, float]]:
    """A file's styles, highest first: the :data:`STYLE_TAGS` whose (weighted) mean probability over
    the given taggram rows is at least ``threshold``.

    Parameters
    ----------
    taggram : np.ndarray
        Shape ``(n_windows, 50)``, MSD tag probabilities of the file's music windows.
    weights : np.ndarray, optional
        Shape ``(n_windows,)``, e.g. seconds of real audio per window; equal by default.
    threshold : float, default STYLE_THRESHOLD (0.2)

    Returns
    -------
    list of (str, float)
        ``[(style, score), ...]``; empty for no rows.
    """
    taggram = np.asarray(taggram, np.float64)
    if not len(taggram):
        return []
    weights = np.ones(len(taggram)) if weights is None else np.asarray(weights, np.float64)
    if weights.sum() <= 0:
        weights = np.ones(len(taggram))
    mean = (taggram[:, _STYLE_INDEX] * weights[:, None]).sum(axis=0) / weights.sum()
    order = np.argsort(-mean, kind="stable")
    return [(STYLE_TAGS[i], float(mean[i])) for i in order if mean[i] >= threshold]
