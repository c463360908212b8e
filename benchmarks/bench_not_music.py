"""How well the default model's not-music detector works: the figures of docs/model-card.md.

- **Not music rejected**, per family, on generated corpora the detector was not fitted on: the
  held-out split (other languages, voices, noise colours and signal types) of seeds 0 and 2,
  and a fresh seed-3 draw of both splits (``tests/notmusic_corpus.py``; speech needs espeak-ng).
- **Music wrongly rejected**: all 80 gtzan-mini clips through ``genrekit.inference.batch.predict_files``
  (the path of ``genrekit predict``), must be 0; synthetic music of seeds the fit did not use
  (``scripts/not_music/synthmusic.py``, seeds 4-5); and librosa's example music recordings
  that are in librosa's cache (nothing is downloaded unless ``--download``).
- **Styles** (``--styles``) on gtzan-mini: how many per file, and the most frequent ones.

File decisions on the corpora use the per-segment taggrams of ``classify_segments`` (cached in
``.genrekit-cache/not-music``) and the same rule as ``genrekit predict``
(:func:`genrekit.inference.taggram.detect_not_music`).

Usage, from the repository root (about 3 minutes on one core the first time)::

    .venv/bin/python benchmarks/bench_not_music.py [--shared ../shared] [--json docs/not-music-eval.json] [--download]
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
LIBROSA_MUSIC = ("brahms", "choice", "fishin", "nutcracker", "pistachio", "sweetwaltz", "trumpet", "vibeace")
LIBROSA_NOT_MUSIC = ("libri1", "libri2", "libri3", "humpback", "robin")


def file_results(data, block, window, split=None):
    """(family, not music?, fraction) for every item of a cached set."""
    out = []
    for i in range(len(data["name"])):
        if split is not None and data["split"][i] != split:
            continue
        rows = data["item"] == i
        flags, fraction = detect_not_music(block, data["taggram"][rows], data["silent"][rows],
                                           data["ends"][rows] - data["starts"][rows], window)
        if np.isnan(fraction):
            continue  # all silent: genrekit's silence answer, not the detector's
        out.append((str(data["family"][i]) if "family" in data else str(data["style"][i]),
                    fraction >= block["file_fraction"], fraction, int(flags.sum()), int((~data["silent"][rows]).sum())))
    return out


def family_table(results):
    table = defaultdict(lambda: [0, 0, 0, 0])
    for family, rejected, _, flagged, voiced in results:
        t = table[family]
        t[0] += rejected
        t[1] += 1
        t[2] += flagged
        t[3] += voiced
    total = [sum(t[k] for t in table.values()) for k in range(4)]
    return {**{f: t for f, t in sorted(table.items())}, "all": total}


def librosa_examples(names, download):
    from librosa.util import files as lf

    trackmap, cache = getattr(lf, "__TRACKMAP"), Path(getattr(lf, "__GOODBOY").path)
    found, missing = {}, []
    for name in names:
        path = cache / (trackmap[name]["path"] + ".ogg")
        if not path.exists() and download:
            import librosa

            path = Path(librosa.ex(name))
        (found.__setitem__(name, path) if path.exists() else missing.append(name))
    return found, missing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    parser.add_argument("--json", type=Path, help="Also write the figures here.")
    parser.add_argument("--download", action="store_true", help="Fetch librosa examples that are not cached.")
    args = parser.parse_args()
    model = sets.default_model()
    block, window = model.not_music, model.window
    report = {"model": model.model_id, "threshold": block["threshold"], "file_fraction": block["file_fraction"]}

    print("== not music rejected (files; segments), by family")
    report["corpora"] = {}
    for title, parts in EVAL_CORPORA.items():
        results = []
        for spec, split in parts:
            results += file_results(sets.corpus(**spec), block, window, split)
        table = family_table(results)
        report["corpora"][title] = {f: {"files_rejected": t[0], "files": t[1], "segments_flagged": t[2],
                                        "segments": t[3]} for f, t in table.items()}
        print(f"-- {title}")
        for family, (rej, n, fl, nseg) in table.items():
            print(f"  {family:<8} files {rej:>3}/{n:<3} = {100 * rej / n:5.1f} %   segments {fl:>4}/{nseg:<4} = "
                  f"{100 * fl / max(nseg, 1):5.1f} %")

    print("== music wrongly rejected")
    from genrekit.inference.batch import predict_files

    mini = args.shared / "data" / "gtzan-mini"
    records = [r for r in predict_files([mini], model, segments=True, styles=True) if "error" not in r]
    rejected = [r["path"] for r in records if r.get("not_music")]
    flagged = sum(bool(s.get("not_music")) for r in records for s in r["segments"])
    n_segments = sum(not s.get("silent") for r in records for s in r["segments"])
    worst = max(records, key=lambda r: sum(bool(s.get("not_music")) for s in r["segments"]) / len(r["segments"]))
    report["gtzan_mini"] = {"files": len(records), "files_rejected": rejected, "segments_flagged": flagged,
                            "segments": n_segments, "most_flagged_file": os.path.relpath(worst["path"], mini)}
    print(f"  gtzan-mini: {len(rejected)}/{len(records)} files rejected, {flagged}/{n_segments} segments flagged "
          f"(most: {report['gtzan_mini']['most_flagged_file']})")

    synth = sets.synthetic_music()
    seed = np.array([int(n.rsplit("-", 1)[1]) for n in synth["name"]])
    keep = {k: v for k, v in synth.items()}
    unseen = [r for i, r in enumerate(file_results(keep, block, window)) if seed[i] >= 4]
    report["synthetic_music_unseen_seeds"] = {"files": len(unseen), "files_rejected": sum(r[1] for r in unseen),
                                              "segments_flagged": sum(r[3] for r in unseen),
                                              "segments": sum(r[4] for r in unseen)}
    print(f"  synthetic music, seeds 4-5 ({len(synthmusic.STYLES)} styles): {report['synthetic_music_unseen_seeds']}")

    found, missing = librosa_examples(LIBROSA_MUSIC + LIBROSA_NOT_MUSIC, args.download)
    report["librosa"] = {"missing": missing, "results": {}}
    for name, path in found.items():
        result = model.predict(str(path))
        report["librosa"]["results"][name] = {"music": name in LIBROSA_MUSIC, "not_music": result.not_music,
                                              "genre": result.genre, "fraction": result.not_music_fraction}
    print(f"  librosa examples: used {sorted(found) or 'none'}; not in librosa's cache: {missing}")
    for name, r in report["librosa"]["results"].items():
        print(f"    {name:<11} {'music' if r['music'] else 'not music':<9} -> "
              f"{'not music' if r['not_music'] else r['genre']} (fraction {r['fraction']})")

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
