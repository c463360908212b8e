"""musicnn inference speed: plain port vs optimised port vs cheap approximation, side by side.

Every clip is decoded at 16 kHz and turned into log-mel patches beforehand (the front end is
timed separately); then, per 30 s clip (10 patches of 3 s, musicnn's default no-overlap):

- **plain**: `Musicnn.reference`, one patch at a time: ``nn.Conv2d`` on NCHW tensors, batch
  norm on every position, the max over frequency last, exactly as the TF graph.
- **optimised**: `Musicnn.forward` on the clip's 10 patches at once (provably constant
  filters skipped, max-pool before the elementwise layers, Toeplitz GEMM for the temporal
  convolutions). Same numbers to float32 round-off.
- **cheap**: the same with ``tolerance=1e-2``: filters whose output provably stays within
  0.01 of a constant are skipped too.

Per-clip seconds are the median over clips of the best of ``--repeats`` runs (warm: one
untimed round first; the variants take turns clip by clip so that the load of a shared
machine hits them alike). "cpu" is the process CPU time: with ``--threads 1`` it hardly
depends on other processes, unlike wall time. Parity of each variant against the plain port is reported over all the
clips' patches: taggram max abs difference, agreement of the top tag per patch and of the
clip's top-5 tags (mean taggram).

Usage, from the repository root::

    .venv/bin/python benchmarks/bench_musicnn.py [../shared/data/gtzan-mini] [--clips 10] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from genrekit.audio.decode import load_audio
from genrekit.features.musicnn.embedding import file_logmel, logmel_patches
from genrekit.features.musicnn.network import MODELS
from genrekit.features.musicnn.weights import load_musicnn

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "gtzan-mini"
CHEAP_TOLERANCE = 1e-2


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("data", nargs="?", type=Path, default=DEFAULT_DATA, help="folder of audio clips (gtzan-mini)")
    parser.add_argument("--model", action="append", choices=list(MODELS), help="repeatable; default: MSD_musicnn and MTT_musicnn")
    parser.add_argument("--clips", type=int, default=10, help="clips to time, one genre after another")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per clip (best kept)")
    return parser.parse_args()


def pick_clips(root: Path, count: int) -> list[Path]:
    """``count`` clips spread over the genres: the first of each genre, then the second..."""
    by_genre = [sorted(folder.glob("*.flac")) for folder in sorted(root.iterdir()) if folder.is_dir()]
    ordered = [clips[i] for i in range(max(map(len, by_genre))) for clips in by_genre if i < len(clips)]
    return ordered[:count]


def interleaved_best_times(variants: dict, inputs: list, repeats: int) -> dict[str, list[tuple[float, float]]]:
    """Best (wall, process CPU) seconds of each variant on each input.

    The variants take turns on every input, ``repeats`` rounds after one warm-up round, so
    that a change in the load of a shared machine hits them alike.
    """
    best = {label: [] for label in variants}
    for item in inputs:
        times = {label: [] for label in variants}
        for round_index in range(repeats + 1):
            for label, variant in variants.items():
                wall, cpu = time.perf_counter(), time.process_time()
                variant(item)
                if round_index:  # round 0 warms up
                    times[label].append((time.perf_counter() - wall, time.process_time() - cpu))
        for label, pairs in times.items():
            best[label].append((min(p[0] for p in pairs), min(p[1] for p in pairs)))
    return best


def taggram(output) -> np.ndarray:
    if isinstance(output, list):  # one output per patch
        return np.concatenate([o["taggram"].numpy() for o in output])
    return output["taggram"].numpy()


def load_average() -> str:
    return " ".join(f"{value:.1f}" for value in os.getloadavg())


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    clips = pick_clips(args.data, args.clips)
    print(f"{len(clips)} clips from {args.data}, {args.threads} threads, load average {load_average()}")

    audio = [load_audio(clip, sr=16000).samples for clip in clips]
    front = interleaved_best_times({"front": file_logmel}, audio, args.repeats)["front"]
    patches = [logmel_patches(file_logmel(a))[0] for a in audio]
    print(f"front end (16 kHz samples -> log-mel patches): {statistics.median(t[0] for t in front):.3f} s per clip")

    for name in args.model or ["MSD_musicnn", "MTT_musicnn"]:
        exact, cheap = load_musicnn(name), load_musicnn(name, tolerance=CHEAP_TOLERANCE)
        variants = {
            "plain (reference, batch 1)": lambda p: [exact.reference(row[None]) for row in p],
            "optimised (batched)": exact,
            f"cheap (tolerance {CHEAP_TOLERANCE:g}, batched)": cheap,
        }
        with torch.inference_mode():
            plain = [exact.reference(p)["taggram"].numpy() for p in patches]
            timings = interleaved_best_times(variants, patches, args.repeats)
            print(f"\n{name}: seconds per 30 s clip (network only; median over clips, best of {args.repeats})")
            print(f"{'variant':38s} {'wall':>7s} {'cpu':>7s}  {'taggram max|diff|':>17s} {'top-1 agree':>11s} {'top-5 same':>10s}")
            for label, variant in variants.items():
                tags = [taggram(variant(p)) for p in patches]
                difference = max(float(np.abs(t - r).max()) for t, r in zip(tags, plain))
                top1 = np.mean(np.concatenate([t.argmax(1) == r.argmax(1) for t, r in zip(tags, plain)]))
                top5 = np.mean([set(np.argsort(-t.mean(0))[:5]) == set(np.argsort(-r.mean(0))[:5]) for t, r in zip(tags, plain)])
                wall = statistics.median(t[0] for t in timings[label])
                cpu = statistics.median(t[1] for t in timings[label])
                print(f"{label:38s} {wall:7.3f} {cpu:7.3f}  {difference:17.2e} {top1:11.1%} {top5:10.1%}")
    print(f"\nload average at the end: {load_average()}")


if __name__ == "__main__":
    main()
