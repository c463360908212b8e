"""How well the default model's not-music detector works: the figures of docs/model-card.md.

- **Real recordings, nested grouped cross-validation** (read from ``docs/not-music-cv.json``, which
  ``scripts/fit_not_music.py`` writes; ``--cv`` recomputes it): the fit's own data (
  real speech, effects and game music from Debian packages, the generated corpus, synthetic
  music), 5 folds with whole groups per fold (a language, a package, a generator family or a
  style never on both sides); per family, files rejected out of fold.
- **Real recordings, held-out groups** (``real.HELDOUT``: speech in Russian, Ukrainian,
  Lithuanian, Dutch, Hebrew and Greek; Chromium B.S.U. and Bucklespring effects; ASC and the
  Asterisk music-on-hold pieces), never fitted on, through the shipped block; clean and
  augmented clips of two draws (seeds 0 and 1).
- **Generated corpora** the detector was not fitted on: the held-out split of seeds 0 and 2,
  and a fresh seed-3 draw of both splits (``tests/notmusic_corpus.py``; speech needs espeak-ng).
- **Tones**: a pure 440 Hz sine, a 1 kHz sine, a slow sweep and 50 Hz mains hum, 30 s each,
  through ``model.predict``.
- **Music wrongly rejected**: all 80 gtzan-mini clips through ``genrekit.inference.batch.predict_files``
  (the path of ``genrekit predict``), must be 0, and whether GTZAN hip-hop keeps its genre;
  synthetic music of seeds the fit did not use (seeds 4-5).
- **Speech and music alternating**: 9 s of held-out real speech and 9 s of gtzan-mini music,
  four times over; the windows' answers.
- **Styles** (``--styles``) on gtzan-mini: how many per file, and the most frequent ones.

Needs ``.ci/real-audio-setup`` (Debian packages) and espeak-ng. Usage, from the repository root
(about 15 minutes on one core the first time, features cached)::

    .venv/bin/python benchmarks/bench_not_music.py [--shared ../shared] [--json docs/not-music-eval.json] [--cv]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import fit_not_music  # noqa: E402
import real_corpus as real  # noqa: E402  (tests/ is on sys.path through sets)
from not_music import sets, synthmusic  # noqa: E402

from genrekit.inference.taggram import detect_not_music  # noqa: E402

EVAL_CORPORA = {
    "held-out variants (seeds 0 and 2)": [({"seed": 0, "per_variant": 4, "speech_per_voice": 1,
                                            "splits": ("fit", "heldout")}, "heldout"),
                                           ({"seed": 2, "per_variant": 6, "speech_per_voice": 2,
                                             "splits": ("heldout",)}, "heldout")],
    "fresh draw, both splits (seed 3)": [({"seed": 3, "per_variant": 4, "speech_per_voice": 1,
                                           "splits": ("fit", "heldout")}, None)],
}
SR = 16000


def file_results(data, block, window, split=None, family_key="family", items=None):
    """(family, not music?, fraction, flagged, voiced) for every item (or those in ``items``) of a
    cached inputs set."""
    rows_all = sets.tag_rows_of(data, block)
    out = []
    for i in range(len(data["name"])):
        if (split is not None and data["split"][i] != split) or (items is not None and i not in items):
            continue
        rows = data["item"] == i
        flags, fraction = detect_not_music(block, rows_all[rows], data["silent"][rows],
                                           data["ends"][rows] - data["starts"][rows], window)
        if np.isnan(fraction):
            continue  # all silent: genrekit's silence answer, not the detector's
        out.append((str(data[family_key][i]), fraction >= block["file_fraction"], fraction, int(flags.sum()),
                    int((~data["silent"][rows]).sum())))
    return out


def family_table(results):
    table = defaultdict(lambda: [0, 0, 0, 0])
    for family, rejected, _, flagged, voiced in results:
        t = table[family]
        t[0] += rejected
        t[1] += 1
        t[2] += flagged
        t[3] += voiced
    total = [sum(t[k] for f, t in table.items() if "music" not in f) for k in range(4)]
    return {**{f: t for f, t in sorted(table.items())}, "all not music": total}


def print_table(title, table):
    print(f"-- {title}")
    for family, (rej, n, fl, nseg) in table.items():
        print(f"  {family:<24} files {rej:>4}/{n:<4} = {100 * rej / max(n, 1):5.1f} %   windows {fl:>5}/{nseg:<5} = "
              f"{100 * fl / max(nseg, 1):5.1f} %")
    return {f: {"files_rejected": t[0], "files": t[1], "windows_flagged": t[2], "windows": t[3]} for f, t in table.items()}


def real_heldout(block, window):
    results = []
    for seed in (0, 1):
        data = sets.real_inputs(seed=seed, per_group=6, heldout=True if seed else None)
        held = {i for i, (f, g) in enumerate(zip(data["family"], data["group"])) if real.is_heldout(f, g)}
        results += [(f"real {r[0]}", *r[1:]) for r in file_results(data, block, window, items=held)]
    return family_table(results)


def tones():
    t = np.arange(30 * SR) / SR
    sweep_phase = 2 * np.pi * (100 * t + (4000 - 100) / (2 * 30) * t ** 2)
    return {"sine 440 Hz": 0.3 * np.sin(2 * np.pi * 440 * t), "sine 1 kHz": 0.3 * np.sin(2 * np.pi * 1000 * t),
            "sweep 100 Hz-4 kHz": 0.3 * np.sin(sweep_phase),
            "mains hum 50 Hz + harmonics": sum(0.1 / k * np.sin(2 * np.pi * 50 * k * t) for k in (1, 2, 3))}


def alternating(model, gtzan_mini: Path):
    from genrekit.audio.decode import load_audio

    speech = [c.samples for c in real.corpus_clips(seed=7, per_group=1, heldout=True, families=("speech",))
              if c.variant == "clean"]
    music = [load_audio(p, sr=SR).samples for p in sorted(gtzan_mini.glob("*/*.00007.flac"))[:4]]
    parts, truth = [], []
    for s, m in zip(speech, music):
        parts += [s[: 9 * SR], m[: 9 * SR]]
        truth += ["speech"] * 3 + ["music"] * 3
    result = model.predict(np.concatenate(parts).astype(np.float32), SR, segments=True).to_dict()
    answers = ["not music" if s.get("not_music") else s.get("genre") for s in result["segments"]]
    speech_flagged = sum(a == "not music" for a, k in zip(answers, truth) if k == "speech")
    music_kept = sum(a != "not music" for a, k in zip(answers, truth) if k == "music")
    return {"windows": answers, "speech_windows_flagged": f"{speech_flagged}/{truth.count('speech')}",
            "music_windows_kept": f"{music_kept}/{truth.count('music')}", "genre": result["genre"],
            "not_music": bool(result.get("not_music"))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    parser.add_argument("--json", type=Path, help="Also write the figures here.")
    parser.add_argument("--cv", action="store_true", help="Recompute the nested cross-validation (about 5 "
                        "minutes) instead of reading docs/not-music-cv.json, which the fit wrote.")
    args = parser.parse_args()
    model = sets.default_model()
    block, window = model.not_music, model.window
    report = {"model": model.model_id, "threshold": block["threshold"], "file_fraction": block["file_fraction"]}

    print("== real recordings, nested grouped 5-fold cross-validation of the fit (files; windows)")
    if args.cv:
        cv_table = fit_not_music.cross_validate(fit_not_music.training_rows(), fit_not_music.current_block())
    else:  # as scripts/fit_not_music.py measured it when it fitted the shipped block
        cv_table = json.loads(fit_not_music.CV_JSON.read_text())["families"]
    report["real_cv"] = print_table("out of fold", {f: [t["files_rejected"], t["files"], t["windows_flagged"],
                                                        t["windows"]] for f, t in cv_table.items()})
    report["real_heldout"] = print_table("held-out groups (seeds 0 and 1), shipped detector",
                                         real_heldout(block, window))

    print("== generated corpora (files; windows), by family")
    report["corpora"] = {}
    for title, parts in EVAL_CORPORA.items():
        results = []
        for spec, split in parts:
            results += file_results(sets.corpus_inputs(**spec), block, window, split)
        report["corpora"][title] = print_table(title, family_table(results))

    print("== tones (30 s)")
    report["tones"] = {}
    for name, x in tones().items():
        result = model.predict(x.astype(np.float32), SR)
        report["tones"][name] = {"not_music": bool(result.not_music), "genre": result.genre,
                                 "fraction": result.not_music_fraction}
        print(f"  {name:<28} -> {'not music' if result.not_music else result.genre} "
              f"(fraction {result.not_music_fraction})")

    print("== music wrongly rejected")
    from genrekit.inference.batch import predict_files

    mini = args.shared / "data" / "gtzan-mini"
    records = [r for r in predict_files([mini], model, segments=True, styles=True) if "error" not in r]
    rejected = [os.path.relpath(r["path"], mini) for r in records if r.get("not_music")]
    flagged = sum(bool(s.get("not_music")) for r in records for s in r["segments"])
    n_segments = sum(not s.get("silent") for r in records for s in r["segments"])
    hiphop = [r for r in records if Path(r["path"]).parent.name == "hiphop"]
    report["gtzan_mini"] = {"files": len(records), "files_rejected": rejected, "segments_flagged": flagged,
                            "segments": n_segments,
                            "hiphop_answered_hiphop": f"{sum(r.get('genre') == 'hiphop' for r in hiphop)}/{len(hiphop)}",
                            "hiphop_windows_flagged": sum(bool(s.get("not_music")) for r in hiphop for s in r["segments"])}
    print(f"  gtzan-mini: {len(rejected)}/{len(records)} files rejected, {flagged}/{n_segments} windows flagged; "
          f"hiphop clips answered hiphop {report['gtzan_mini']['hiphop_answered_hiphop']}")

    synth = sets.synthetic_music_inputs()
    seed = np.array([int(n.rsplit("-", 1)[1]) for n in synth["name"]])
    unseen = [r for i, r in enumerate(file_results(synth, block, window, family_key="style")) if seed[i] >= 4]
    report["synthetic_music_unseen_seeds"] = {"files": len(unseen), "files_rejected": sum(r[1] for r in unseen),
                                              "windows_flagged": sum(r[3] for r in unseen),
                                              "windows": sum(r[4] for r in unseen)}
    print(f"  synthetic music, seeds 4-5 ({len(synthmusic.STYLES)} styles): {report['synthetic_music_unseen_seeds']}")

    report["alternating"] = alternating(model, mini)
    print(f"== speech and music alternating, 9 s each: {report['alternating']}")

    counts = [len(r.get("styles") or []) for r in records]
    common = Counter(s["style"] for r in records for s in r.get("styles") or [])
    report["styles_gtzan_mini"] = {"mean_per_file": round(float(np.mean(counts)), 2),
                                   "files_without": int(sum(c == 0 for c in counts)),
                                   "most_common": common.most_common(12)}
    print(f"== styles on gtzan-mini: {report['styles_gtzan_mini']}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n")
        print("wrote", args.json)


if __name__ == "__main__":
    main()
