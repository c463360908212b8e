"""Fit the not-music detector of the bundled default model and write it into its ``not_music`` block.

The detector is an L2 logistic regression (scikit-learn's objective, C = 1, balanced classes,
standardised features folded back into the weights) on 53 statistics of each segment's
MSD_musicnn taggram (:func:`genrekit.inference.taggram.taggram_features`):

- music: ``../shared/data/gtzan-msd-taggrams/train.npz`` (12,415 rows of the 443 GTZAN
  training tracks), plus synthetic music (``scripts/not_music/synthmusic.py``, 11 styles, seeds
  0-3) at 5 % of the music-class weight, without which electronic and string music is rejected;
- not music: the ``fit`` split of ``tests/notmusic_corpus.py`` (seeds 0 and 1: espeak-ng speech,
  babble, noisy speech, noise, tones, sweeps, clicks, hum, mixtures, field and animal sounds),
  full-length non-silent windows only (a zero-padded window is never music-side data).

The segment threshold is the 0.995 quantile of the out-of-fold scores (5 folds grouped by track)
of the real-music rows: about 0.5 % of unseen GTZAN music segments score above it. A file is not
music when at least ``file_fraction`` = 0.8 of its full-length non-silent segments are.

No gtzan-mini clip, librosa example or held-out corpus variant is used.
``benchmarks/bench_not_music.py`` measures the result. Needs espeak-ng (``apt-get install
espeak-ng``); about 5 minutes on one core, features cached in ``.genrekit-cache/not-music``.

Usage, from the repository root::

    .venv/bin/python scripts/fit_not_music.py [--shared ../shared] [--dry-run]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from genrekit.inference.taggram import N_FEATURES, taggram_features
from not_music import sets

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_JSON = ROOT / "src" / "genrekit" / "assets" / "models" / "default.json"
FIT_CORPORA = ({"seed": 0, "per_variant": 4, "speech_per_voice": 1, "splits": ("fit", "heldout")},
               {"seed": 1, "per_variant": 10, "speech_per_voice": 3, "splits": ("fit",)})
FIT_SYNTH_SEEDS = (0, 1, 2, 3)
C, SYNTH_WEIGHT, QUANTILE, FOLDS, FILE_FRACTION = 1.0, 0.05, 0.995, 5, 0.8


def logistic_irls(X, y, sample_weight, C, iters=100, tol=1e-10):
    """L2 logistic regression (0.5 |w|^2 + C sum s_i loss_i, intercept not penalised) by Newton's
    method; matches scikit-learn's ``LogisticRegression`` to about 1e-5 in score."""
    n, d = X.shape
    A = np.column_stack([X, np.ones(n)])
    theta = np.zeros(d + 1)
    reg = np.r_[np.ones(d), 0.0] / C
    for _ in range(iters):
        p = 1 / (1 + np.exp(-(A @ theta)))
        grad = A.T @ (sample_weight * (p - y)) + reg * theta
        H = (A * (sample_weight * p * (1 - p))[:, None]).T @ A + np.diag(reg)
        step = np.linalg.solve(H, grad)
        theta -= step
        if np.abs(step).max() < tol:
            break
    return theta[:d], float(theta[d])


def group_folds(groups, k):
    """Fold per row, whole groups per fold (round robin by decreasing size, like GroupKFold)."""
    names, inverse, counts = np.unique(groups, return_inverse=True, return_counts=True)
    load, fold_of = np.zeros(k), np.empty(len(names), int)
    for g in np.argsort(-counts, kind="stable"):
        fold_of[g] = int(np.argmin(load))
        load[fold_of[g]] += counts[g]
    return fold_of[inverse]


def fit_once(music, synth, notmusic):
    X = np.vstack([music, synth, notmusic])
    y = np.r_[np.zeros(len(music) + len(synth)), np.ones(len(notmusic))]
    w = np.r_[np.full(len(music), (1 - SYNTH_WEIGHT) / len(music)),
              np.full(len(synth), SYNTH_WEIGHT / max(1, len(synth))),
              np.full(len(notmusic), 1.0 / len(notmusic))]
    w /= w.mean()
    mean, scale = X.mean(axis=0), X.std(axis=0) + 1e-12
    coef, intercept = logistic_irls((X - mean) / scale, y, w, C)
    weight = coef / scale
    return weight, intercept - float(weight @ mean)


def training_data(shared: Path):
    music = np.load(shared / "data" / "gtzan-msd-taggrams" / "train.npz")
    notmusic = []
    for spec in FIT_CORPORA:
        c = sets.corpus(**spec)
        full = (c["ends"] - c["starts"]) >= 3.0 - 1e-3
        notmusic.append(c["taggram"][(~c["silent"]) & full & (c["split"][c["item"]] == "fit")])
    s = sets.synthetic_music()
    seed = np.array([int(n.rsplit("-", 1)[1]) for n in s["name"]])[s["item"]]
    synth = s["taggram"][(~s["silent"]) & np.isin(seed, FIT_SYNTH_SEEDS)]
    return music["X"], music["IDS"], np.vstack(notmusic), synth


def fit(music, groups, notmusic, synth) -> dict:
    Fm, Fn, Fs = taggram_features(music), taggram_features(notmusic), taggram_features(synth)
    fold = group_folds(np.asarray(groups), FOLDS)
    oof = np.empty(len(Fm))
    for f in range(FOLDS):
        test = fold == f
        w, b = fit_once(Fm[~test], Fs, Fn)
        oof[test] = Fm[test] @ w + b
    weight, bias = fit_once(Fm, Fs, Fn)
    assert weight.shape == (N_FEATURES,)
    return {
        "detector": "msd-taggram-logreg",
        "features": "p = clip(taggram, 1e-6, 1 - 1e-6); f = [sqrt(p) (50, MSD tag order), log(sum p), "
                    "entropy(p / sum p), logit(max p)]; segment not music if f . weight + bias > threshold",
        "weight": [round(float(v), 8) for v in weight],
        "bias": round(float(bias), 8),
        "threshold": round(float(np.quantile(oof, QUANTILE)), 6),
        "file_fraction": FILE_FRACTION,
        "training": {
            "script": "scripts/fit_not_music.py",
            "music": f"gtzan-msd-taggrams/train.npz ({len(Fm)} rows, {len(np.unique(groups))} tracks) and "
                     f"synthetic music ({len(Fs)} rows, weight {SYNTH_WEIGHT} of the music class)",
            "not_music": f"tests/notmusic_corpus.py fit split, {len(Fn)} full non-silent windows",
            "C": C,
            "threshold_rule": f"{QUANTILE} quantile of {FOLDS}-fold out-of-fold scores of the music rows (grouped by track)",
            "oof_music_segments_flagged": round(float(np.mean(oof > np.quantile(oof, QUANTILE))), 5),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    parser.add_argument("--dry-run", action="store_true", help="Print the block instead of writing it.")
    args = parser.parse_args()
    block = fit(*training_data(args.shared))
    print(f"threshold {block['threshold']:.4f}; {block['training']}")
    if args.dry_run:
        print(json.dumps(block))
        return
    write_block(block)


def write_block(block: dict, path: Path = DEFAULT_JSON) -> None:
    """Put ``block`` into the model JSON as ``not_music``, leaving every other field as it is."""
    spec = json.loads(path.read_text())
    spec["not_music"] = block
    path.write_text(json.dumps(spec, indent=2, allow_nan=False) + "\n")
    print("wrote the not_music block of", path)


if __name__ == "__main__":
    main()
