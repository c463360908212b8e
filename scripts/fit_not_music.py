"""Fit the bundled default model's not-music detector and write it into its ``not_music`` block.

The detector (``genrekit.inference.taggram``) flags a window when either of two L2 logistic
regressions (standardised features folded back into the weights) does:

**The taggram stage** (the block's own weight, bias and threshold) reads 53 statistics of the
MSD taggram. Music: the taggram rows of the 443 GTZAN training tracks
(``../shared/data/gtzan-msd-taggrams/train.npz``), with synthetic music at
``TAGGRAM_SYNTH_SHARE`` and the real game music below at ``TAGGRAM_REAL_SHARE`` of the music
class; not music: the ``fit`` split of the generated corpus ``tests/notmusic_corpus.py`` (seeds
0 and 1: espeak-ng speech, babble, noise, tones, sweeps, clicks, hum, mixtures, synthetic field
and animal sounds). Threshold: the ``TAGGRAM_QUANTILE`` quantile of GTZAN's out-of-fold scores
(5 folds grouped by track). It knows GTZAN's music, noises and tones, but takes recorded voices
for rap.

**The layers stage** (``layers_stage``) reads what the same network pass also gives: the 53
taggram statistics, the 200-unit penultimate layer and 12 classic speech/music descriptors of
the window's samples (``genrekit.features.speechmusic``); C = ``C``. Rows (full-length,
non-silent windows only):

- music: the 31 gtzan-mini clips of the artist-filtered split's *training* list (songs with
  voices: hip-hop, pop, rock, reggae, metal, jazz, disco; grouped by artist) at ``GTZAN_SHARE``
  of the music-class weight, without which singing and rap are taken for speech; real game
  soundtracks of the fitting groups (``tests/real_corpus.py``: Colobot, Drascula, Fish Fillets;
  clean and augmented); synthetic music (``scripts/not_music/synthmusic.py``, 11 styles, seeds
  0-3) at ``SYNTH_SHARE`` of the music-class weight;
- not music: real recorded speech (telephone prompts, spoken letters and words, game character
  voices; 25 language groups) and game sound effects of the fitting groups, clean and augmented
  (reverb, telephone and radio band, MP3/Opus, noise, a music bed under speech).

Each class weighs as much as the other (both stages). No other gtzan-mini clip (the 40 of the validation
list, 4 of the test list and 5 excluded ones are left for measuring), nothing of the real
corpus' held-out groups (``real_corpus.HELDOUT``) and no reserved package is used. The layers
stage's threshold is the ``QUANTILE`` quantile of the out-of-fold scores of its music windows
(5 folds, whole groups per fold: a language, a package, an artist or a synthetic style never on
both sides). The whole procedure (both stages, and the layers stage's threshold on inner folds)
is cross-validated on outer folds of the same kind for ``docs/not-music-cv.json``; the quantile
was chosen on that nested CV (``--grid``).

Usage, from the repository root (needs ``.ci/real-audio-setup`` and espeak-ng; about 15 minutes on one core
from an empty cache, features cached under ``~/.cache/genrekit/real-audio`` and
``~/.cache/genrekit/not-music``)::

    .venv/bin/python scripts/fit_not_music.py [--dry-run] [--grid]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from genrekit.inference.taggram import (
    N_FEATURES,
    detector_features,
    detector_size,
    not_music_scores,
    taggram_features,
)
from not_music import sets  # puts tests/ on sys.path

import real_corpus as real  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_JSON = ROOT / "src" / "genrekit" / "assets" / "models" / "default.json"
CV_JSON = ROOT / "docs" / "not-music-cv.json"
FIT_SYNTH_SEEDS = (0, 1, 2, 3)
REAL = {"seed": 0, "per_group": 6}
INPUTS = ["taggram", "penultimate", "descriptors"]
C, SYNTH_SHARE, GTZAN_SHARE, QUANTILE, FOLDS = 0.1, 0.15, 0.35, 0.97, 5
GRID = {"C": (0.1,), "QUANTILE": (0.97, 0.98, 0.99)}
#: The taggram stage: C, shares of the music class (synthetic music, real game music; GTZAN the
#: rest), and the quantile of GTZAN's out-of-fold scores (folds grouped by track) for its threshold.
TAGGRAM_C, TAGGRAM_SYNTH_SHARE, TAGGRAM_REAL_SHARE, TAGGRAM_QUANTILE = 1.0, 0.05, 0.15, 0.995
GENERATED = ({"seed": 0, "per_variant": 4, "speech_per_voice": 1, "splits": ("fit", "heldout")},
             {"seed": 1, "per_variant": 10, "speech_per_voice": 3, "splits": ("fit",)})
SHARED = ROOT.parent / "shared"


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


# --- rows ---------------------------------------------------------------------------------------

def rows_of(data: dict, source: str, label: float, family, group, keep=None) -> dict:
    """Full-length non-silent windows of a cached set as detector rows with their labels,
    ``family`` (what is reported), ``group`` (what stays on one side of a fold) and ``clip``."""
    mask = ~data["silent"] & ((data["ends"] - data["starts"]) >= 3.0 - 1e-3)
    if keep is not None:
        mask &= keep
    item = data["item"][mask]
    tag_rows = np.hstack([data["taggram"][mask], data["penultimate"][mask], data["descriptors"][mask]])
    return {"rows": tag_rows, "y": np.full(mask.sum(), label) if label is not None else None,
            "family": np.array([family(i) for i in item], dtype=object),
            "group": np.array([f"{source}:{group(i)}" for i in item], dtype=object),
            "clip": np.array([f"{source}:{i}" for i in item], dtype=object)}


def concat(parts: list[dict]) -> dict:
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def real_rows(heldout: bool, seed: int = REAL["seed"], per_group: int = REAL["per_group"]) -> dict:
    """Rows of the real-recording corpus: speech and effects are not music (1), music is music (0).
    Speech groups are languages (``speech/ru``), the others packages (``effects/btanks``)."""
    data = sets.real_inputs(seed=seed, per_group=per_group)
    keep = np.array([real.is_heldout(f, g) == heldout for f, g in zip(data["family"], data["group"])])
    out = rows_of(data, "real", None, lambda i: f"real {data['family'][i]}",
                  lambda i: f"{data['family'][i]}/{data['group'][i]}", keep=keep[data["item"]])
    out["y"] = np.array([f != "real music" for f in out["family"]], float)
    return out


def gtzan_mini_rows(side: str, shared: Path = SHARED) -> dict:
    """Rows of the gtzan-mini clips on one side (``train``, or ``other``: validation, test and
    excluded clips) of the artist-filtered split; music (0), grouped by artist."""
    import csv
    from importlib import resources

    from genrekit.data.splits import load_gtzan_split_lists

    train = set(load_gtzan_split_lists()["train"])
    with (resources.files("genrekit") / "assets" / "gtzan-artists.csv").open() as fh:
        artist = {row["track_id"]: row["artist"] for row in csv.DictReader(fh)}
    data = sets.gtzan_mini_inputs(shared)
    track = [Path(str(n)).stem for n in data["name"]]
    keep = np.array([(t in train) == (side == "train") for t in track])
    return rows_of(data, "gtzan", 0.0, lambda i: f"gtzan-mini {data['genre'][i]}",
                   lambda i: artist.get(track[i], track[i]), keep=keep[data["item"]])


def training_rows() -> dict:
    s = sets.synthetic_music_inputs()
    seed = np.array([int(n.rsplit("-", 1)[1]) for n in s["name"]])
    synth = rows_of(s, "synth", 0.0, lambda i: "synthetic music", lambda i: s["style"][i],
                    keep=np.isin(seed, FIT_SYNTH_SEEDS)[s["item"]])
    return concat([real_rows(heldout=False), gtzan_mini_rows("train"), synth])


def sample_weights(data: dict) -> np.ndarray:
    """Each class weighs half; within a class each source its share (real recordings the rest)."""
    w = np.zeros(len(data["y"]))
    source = np.array([f.split(" ")[0] for f in data["family"]])
    shares = {0.0: {"synthetic": SYNTH_SHARE, "gtzan-mini": GTZAN_SHARE}, 1.0: {}}
    for label, parts in shares.items():
        cls = data["y"] == label
        present = {name: share for name, share in parts.items() if (cls & (source == name)).any()}
        rest = cls & ~np.isin(source, list(present))
        for mask, part in [(cls & (source == n), sh) for n, sh in present.items()] + [(rest, 1 - sum(present.values()))]:
            if mask.any():
                w[mask] = part / mask.sum()
    return w / w.mean()


def stage_of(inputs) -> dict:
    """A block holding only a layers stage that reads ``inputs`` (for the feature helpers)."""
    return {"layers_stage": {"inputs": list(inputs)}}


def fit_once(data: dict, inputs) -> tuple[np.ndarray, float]:
    X = detector_features(stage_of(inputs), data["rows"])
    mean, scale = X.mean(axis=0), X.std(axis=0) + 1e-9
    coef, intercept = logistic_irls((X - mean) / scale, data["y"], sample_weights(data), C)
    weight = coef / scale
    return weight, intercept - float(weight @ mean)


def scores(inputs, weight, bias, rows) -> np.ndarray:
    return detector_features(stage_of(inputs), rows) @ weight + bias


def taggram_stage_flags(block: dict, rows: np.ndarray) -> np.ndarray:
    """A taggram stage's verdict per row."""
    return not_music_scores(block, rows) > float(block["threshold"])


def taggram_stage_data(shared: Path = SHARED) -> dict:
    """What the taggram stage is fitted on besides ``training_rows``' music: the taggram rows of
    the 443 GTZAN training tracks (``gtzan``, with their track ids) and the generated corpus' fit
    split (``generated``: espeak-ng speech, babble, noise, tones, sweeps, clicks, hum, mixtures,
    synthetic field and animal sounds; seeds 0 and 1)."""
    table = np.load(shared / "data" / "gtzan-msd-taggrams" / "train.npz")
    generated = []
    for spec in GENERATED:
        c = sets.corpus_inputs(**spec)
        rows = rows_of(c, "generated", 1.0, lambda i: "", lambda i: "", keep=(c["split"] == "fit")[c["item"]])
        generated.append(rows["rows"][:, :50])
    return {"gtzan": table["X"].astype(np.float64), "tracks": table["IDS"], "generated": np.vstack(generated)}


def fit_taggram_stage(stage_data: dict, data: dict) -> dict:
    """The taggram stage: L2 logistic regression on the 53 taggram statistics. Music: GTZAN's
    training rows, with the synthetic and real game music of ``data`` at their shares; not
    music: the generated corpus. Threshold: the ``TAGGRAM_QUANTILE`` quantile of GTZAN's
    out-of-fold scores (5 folds grouped by track)."""
    synth = data["rows"][data["family"] == "synthetic music", :50]
    real_music = data["rows"][data["family"] == "real music", :50]

    def fit_on(gtzan):
        parts = [(gtzan, 0, 1 - TAGGRAM_SYNTH_SHARE - TAGGRAM_REAL_SHARE), (synth, 0, TAGGRAM_SYNTH_SHARE),
                 (real_music, 0, TAGGRAM_REAL_SHARE), (stage_data["generated"], 1, 1.0)]
        X = taggram_features(np.vstack([p for p, _, _ in parts]))
        y = np.concatenate([np.full(len(p), label, float) for p, label, _ in parts])
        w = np.concatenate([np.full(len(p), share / max(len(p), 1)) for p, _, share in parts])
        mean, scale = X.mean(axis=0), X.std(axis=0) + 1e-12
        coef, intercept = logistic_irls((X - mean) / scale, y, w / w.mean(), TAGGRAM_C)
        weight = coef / scale
        return weight, intercept - float(weight @ mean)

    fold = group_folds(stage_data["tracks"], FOLDS)
    oof = np.empty(len(fold))
    for f in range(FOLDS):
        weight, bias = fit_on(stage_data["gtzan"][fold != f])
        oof[fold == f] = taggram_features(stage_data["gtzan"][fold == f]) @ weight + bias
    weight, bias = fit_on(stage_data["gtzan"])
    assert weight.shape == (N_FEATURES,)
    return {"weight": [round(float(v), 8) for v in weight], "bias": round(float(bias), 8),
            "threshold": round(float(np.quantile(oof, TAGGRAM_QUANTILE)), 6)}


def file_table(data: dict, flagged: np.ndarray, file_fraction: float = 0.8) -> dict:
    """Per family: files (clips) with at least ``file_fraction`` of their windows flagged."""
    out = {}
    for family in sorted(set(data["family"])):
        in_family = data["family"] == family
        clips = sorted(set(data["clip"][in_family]))
        share = np.array([flagged[in_family & (data["clip"] == c)].mean() for c in clips])
        out[family] = {"files_rejected": int((share >= file_fraction).sum()), "files": len(clips),
                       "windows_flagged": int(flagged[in_family].sum()), "windows": int(in_family.sum())}
    return out


def out_of_fold_scores(data: dict, inputs) -> np.ndarray:
    """Each row's score from the stage fitted on the other folds (whole groups per fold)."""
    fold = group_folds(data["group"], FOLDS)
    oof = np.empty(len(fold))
    for f in range(FOLDS):
        test = fold == f
        weight, bias = fit_once({k: v[~test] for k, v in data.items()}, inputs)
        oof[test] = scores(inputs, weight, bias, data["rows"][test])
    return oof


def threshold_of(data: dict, oof: np.ndarray) -> float:
    """The shipped rule: the ``QUANTILE`` quantile of the music rows' out-of-fold scores."""
    return float(np.quantile(oof[data["y"] == 0], QUANTILE))


def outer_taggram_flags(data: dict) -> np.ndarray:
    """Each row's verdict by the taggram stage fitted without the row's outer fold."""
    fold = group_folds(data["group"], FOLDS)
    stage_data = taggram_stage_data()
    flagged = np.zeros(len(fold), bool)
    for f in range(FOLDS):
        test = fold == f
        stage = fit_taggram_stage(stage_data, {k: v[~test] for k, v in data.items()})
        flagged[test] = taggram_stage_flags(stage, data["rows"][test])
    return flagged


def cross_validate(data: dict, block: dict, inputs=INPUTS, taggram_flags: np.ndarray | None = None) -> dict:
    """Per-family file table of grouped k-fold CV of the whole procedure: each outer fold fits
    both stages on the others (the taggram stage with the real game music of those folds) and
    sets the layers stage's threshold by the shipped rule on inner folds of them (nested); a
    window is flagged when either stage says so."""
    fold = group_folds(data["group"], FOLDS)
    flagged = outer_taggram_flags(data) if taggram_flags is None else taggram_flags.copy()
    for f in range(FOLDS):
        test = fold == f
        train = {k: v[~test] for k, v in data.items()}
        weight, bias = fit_once(train, inputs)
        threshold = threshold_of(train, out_of_fold_scores(train, inputs))
        flagged[test] |= scores(inputs, weight, bias, data["rows"][test]) > threshold
    return file_table(data, flagged, float(block["file_fraction"]))


def fit_stage(data: dict, inputs=INPUTS) -> dict:
    """The layers stage fitted on all of ``data``, its threshold by the shipped rule."""
    weight, bias = fit_once(data, inputs)
    assert weight.shape == (detector_size(stage_of(inputs)),)
    n_music = int((data["y"] == 0).sum())
    n_speech_groups = len({g for g, f in zip(data["group"], data["family"]) if f == "real speech"})
    return {
        "inputs": list(inputs),
        "features": "x = [taggram statistics (53: sqrt p, log sum p, entropy, logit max p), penultimate (200), "
                    "speech/music descriptors (12, genrekit.features.speechmusic)]; not music if "
                    "x . weight + bias > threshold",
        "weight": [round(float(v), 8) for v in weight],
        "bias": round(float(bias), 8),
        "threshold": round(threshold_of(data, out_of_fold_scores(data, inputs)), 6),
        "training": {
            "script": "scripts/fit_not_music.py",
            "music": f"{n_music} windows: the 31 gtzan-mini clips of the training list (weight {GTZAN_SHARE} of "
                     f"the music class), real game soundtracks (Colobot, Drascula, Fish Fillets; clean and "
                     f"augmented) and synthetic music (weight {SYNTH_SHARE})",
            "not_music": f"{int((data['y'] == 1).sum())} windows: real recorded speech ({n_speech_groups} language "
                         f"groups) and game sound effects, clean and augmented (tests/real_corpus.py)",
            "C": C,
            "threshold_rule": f"{QUANTILE} quantile of {FOLDS}-fold out-of-fold scores of the music windows "
                              "(folds grouped by language, package, artist or style)",
        },
    }


def current_block(path: Path = None) -> dict:
    """The shipped block without its layers stage (its ``file_fraction`` and notes are kept)."""
    block = dict(json.loads((path or DEFAULT_JSON).read_text())["not_music"])
    block.pop("layers_stage", None)
    return block


def grid(data: dict, block: dict, taggram_flags: np.ndarray) -> list[dict]:
    """Nested CV of every setting in :data:`GRID` (speech, effects and music file rates)."""
    global C, QUANTILE
    chosen = (C, QUANTILE)
    out = []
    for c in GRID["C"]:
        for q in GRID["QUANTILE"]:
            C, QUANTILE = c, q
            table = cross_validate(data, block, taggram_flags=taggram_flags)
            rate = {f: t["files_rejected"] / t["files"] for f, t in table.items()}
            music = [t["files_rejected"] for f, t in table.items() if data["y"][data["family"] == f][0] == 0]
            out.append({"C": c, "quantile": q, "real_speech": round(rate["real speech"], 4),
                        "real_effects": round(rate["real effects"], 4), "music_files_rejected": int(sum(music))})
            print(out[-1])
    C, QUANTILE = chosen
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="Print the figures instead of writing them.")
    parser.add_argument("--grid", action="store_true", help="Also cross-validate every setting of GRID.")
    args = parser.parse_args()
    data, block = training_rows(), current_block()
    report = {"procedure": f"{FOLDS}-fold cross-validation, folds grouped by language (speech), package "
                           "(effects, game music), artist (gtzan-mini) or style (synthetic music); each outer fold "
                           "fits both stages on the other folds (the taggram stage with their real game music) "
                           f"and sets the layers stage's threshold at the {QUANTILE} quantile of their inner "
                           "out-of-fold music scores; a window is not music when either stage says so, a file "
                           "when at least "
                           f"{block['file_fraction']} of its windows are", "C": C, "quantile": QUANTILE}
    taggram_flags = outer_taggram_flags(data)
    if args.grid:
        report["grid"] = grid(data, block, taggram_flags)
    report["families"] = cross_validate(data, block, taggram_flags=taggram_flags)
    block.update(fit_taggram_stage(taggram_stage_data(), data))
    block["training"] = {
        "script": "scripts/fit_not_music.py (fit_taggram_stage)",
        "music": f"gtzan-msd-taggrams/train.npz (12415 rows, 443 tracks), synthetic music (weight "
                 f"{TAGGRAM_SYNTH_SHARE} of the music class) and real game music of the fitting groups "
                 f"(weight {TAGGRAM_REAL_SHARE})",
        "not_music": "tests/notmusic_corpus.py fit split (seeds 0 and 1), full non-silent windows",
        "C": TAGGRAM_C,
        "threshold_rule": f"{TAGGRAM_QUANTILE} quantile of {FOLDS}-fold out-of-fold scores of the GTZAN rows "
                          "(grouped by track)",
    }
    block["layers_stage"] = fit_stage(data)
    print(f"layers stage threshold {block['layers_stage']['threshold']:.4f}; {block['layers_stage']['training']}")
    for family, t in report["families"].items():
        print(f"  {family:<24} files {t['files_rejected']:>4}/{t['files']:<4} windows "
              f"{t['windows_flagged']:>5}/{t['windows']}")
    if args.dry_run:
        return
    CV_JSON.write_text(json.dumps(report, indent=1) + "\n")
    print("wrote", CV_JSON)
    write_block(block)


def write_block(block: dict, path: Path = DEFAULT_JSON) -> None:
    """Put ``block`` into the model JSON as ``not_music``, leaving every other field as it is."""
    spec = json.loads(path.read_text())
    spec["not_music"] = block
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(spec, indent=2, allow_nan=False) + "\n")
    tmp.replace(path)
    print("wrote the not_music block of", path)


if __name__ == "__main__":
    main()
