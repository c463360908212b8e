"""What a model's MSD_musicnn taggram tells beyond the genre: not-music detection and styles.

Both read the 50 MSD_musicnn tag probabilities of each segment (``MSD_TAGS`` order) that a
model whose feature is ``{"name": "musicnn", "model": "MSD_musicnn", "layer": "taggram"}``
already computes on the way to its genre, so neither runs the network a second time.

**Not music.** A model file may carry a ``not_music`` block (docs/model-format.md): a logistic
regression on the taggram, fitted by ``scripts/fit_not_music.py``. Per non-silent segment,
with ``p`` the taggram clipped to [1e-6, 1 - 1e-6]::

    f(p)  = [sqrt(p_1..p_50), log(sum p), entropy(p / sum p), logit(max p)]     # 53 values
    score = f(p) . weight + bias                                                # "not music" logit
    segment not music  <=>  score > threshold

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

#: The feature spec (name, model, layer) whose output is the MSD taggram.
TAGGRAM_FEATURE = {"name": "musicnn", "model": "MSD_musicnn", "layer": "taggram"}

N_FEATURES = len(MSD_TAGS) + 3
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
    """Whether a model's feature output is the MSD_musicnn taggram itself."""
    return isinstance(feature_spec, dict) and all(feature_spec.get(k) == v for k, v in TAGGRAM_FEATURE.items())


def check_not_music_block(block, feature_spec, where) -> dict:
    """The ``not_music`` block of a model spec, validated; raises :class:`ModelError` if unusable."""
    if not isinstance(block, dict):
        raise ModelError(f"{where}: not_music must be an object")
    if not computes_msd_taggram(feature_spec):
        raise ModelError(f"{where}: a not_music block needs a model whose feature is the MSD_musicnn "
                         f"taggram ({TAGGRAM_FEATURE}), not {feature_spec}")
    try:
        weight = np.asarray(block["weight"], dtype=np.float64)
        numbers = [float(block[k]) for k in ("bias", "threshold", "file_fraction")]
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"{where}: not_music needs weight, bias, threshold and file_fraction ({exc})") from None
    if weight.shape != (N_FEATURES,) or not np.isfinite(weight).all() or not np.isfinite(numbers).all():
        raise ModelError(f"{where}: not_music weight must be {N_FEATURES} finite numbers, with finite "
                         f"bias, threshold and file_fraction")
    if not 0 < numbers[2] <= 1:
        raise ModelError(f"{where}: not_music file_fraction must be in (0, 1]")
    return block


def taggram_features(taggram: np.ndarray) -> np.ndarray:
    """``(n, 50)`` MSD taggram rows -> ``(n, 53)`` detector features (see the module docstring)."""
    p = np.clip(np.asarray(taggram, dtype=np.float64), EPS, 1 - EPS)
    if p.ndim != 2 or p.shape[1] != len(MSD_TAGS):
        raise ValueError(f"expected (n, {len(MSD_TAGS)}) MSD taggram rows, got {p.shape}")
    total = p.sum(axis=1)
    q = p / total[:, None]
    top = p.max(axis=1)
    return np.column_stack([np.sqrt(p), np.log(total), -(q * np.log(q)).sum(axis=1), np.log(top) - np.log1p(-top)])


def not_music_scores(block: dict, taggram: np.ndarray) -> np.ndarray:
    """The detector's logit per taggram row (higher: less like music)."""
    return taggram_features(taggram) @ np.asarray(block["weight"], np.float64) + float(block["bias"])


def detect_not_music(block: dict, taggram: np.ndarray, silent: np.ndarray, seconds: np.ndarray,
                     window: float) -> tuple[np.ndarray, float]:
    """``(not_music per segment (n,) bool, fraction)`` for one file; ``fraction`` is NaN when
    every segment is silent. The file is not music when ``fraction >= block["file_fraction"]``."""
    silent = np.asarray(silent, bool)
    seconds = np.asarray(seconds, np.float64)
    flagged = np.zeros(len(silent), bool)
    voiced = ~silent
    if not voiced.any():
        return flagged, float("nan")
    flagged[voiced] = not_music_scores(block, np.asarray(taggram)[voiced]) > float(block["threshold"])
    counted = voiced & (seconds >= window - FULL_WINDOW_SLACK)
    if not counted.any():  # shorter than one window: the padded windows decide
        counted = voiced
    weights = np.maximum(seconds[counted], 0.0)
    if weights.sum() <= 0:
        weights = np.ones(counted.sum())
    return flagged, float((weights * flagged[counted]).sum() / weights.sum())


def file_styles(taggram: np.ndarray, weights: np.ndarray | None = None,
                threshold: float = STYLE_THRESHOLD) -> list[tuple[str, float]]:
    """``[(style, score)]`` of a file, highest first: the :data:`STYLE_TAGS` whose (weighted)
    mean probability over the given taggram rows is at least ``threshold``."""
    taggram = np.asarray(taggram, np.float64)
    if not len(taggram):
        return []
    weights = np.ones(len(taggram)) if weights is None else np.asarray(weights, np.float64)
    if weights.sum() <= 0:
        weights = np.ones(len(taggram))
    mean = (taggram[:, _STYLE_INDEX] * weights[:, None]).sum(axis=0) / weights.sum()
    order = np.argsort(-mean, kind="stable")
    return [(STYLE_TAGS[i], float(mean[i])) for i in order if mean[i] >= threshold]
