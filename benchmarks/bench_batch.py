"""Batch prediction throughput: ``predict_files`` vs the model's pure inference on the same clips.

For each model:

- **pure inference**: every clip is decoded and cut into windows beforehand (not timed); then
  all windows go through ``model.segment_probabilities`` (feature front end + network) in
  batches of ``--batch-size``. This is the floor a batch run can reach when decoding, file IO
  and aggregation are fully hidden.
- **batch**: ``list(predict_files(clips, model, workers=W, batch_size=B))`` for each ``W`` in
  ``--workers``: decoding (libsndfile / FFmpeg, soxr resampling) and segmentation in ``W`` worker
  processes (0: in this process), the network in this process, results in input order.

Threads: pure inference is timed with 1 thread and with every core; batches use the cores the
workers leave (at least 1), as ``genrekit predict`` does, and OpenMP threads sleep when idle
(``OMP_WAIT_POLICY=PASSIVE`` unless set, as ``import genrekit`` sets it).

Figures: files/s, real-time speed (seconds of audio per second of wall time), CPU time of this
process per file (decoding is included only with 0 workers) and the batch's overhead over the
faster pure-inference run. Every figure is the median of ``--repeats`` runs after one warm-up
run (worker start-up, page cache), which is reported separately as "first run".

Usage, from the repository root::

    .venv/bin/python benchmarks/bench_batch.py [../shared/data/gtzan-mini] --model default
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "gtzan-mini"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("data", nargs="?", type=Path, default=DEFAULT_DATA, help="folder of audio clips")
    parser.add_argument("--model", action="append", help="bundled model name or model file (repeatable; default: default)")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2], help="worker counts to time")
    parser.add_argument("--batch-size", type=int, default=32, help="windows per network batch")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per setting (median reported)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads for every run (default: pure inference with 1 thread and with all "
                             "cores; batches with the cores the workers leave, as genrekit predict does)")
    parser.add_argument("--clips", type=int, default=None, help="use only the first N clips")
    return parser.parse_args()


def clips_in(folder: Path, limit: int | None) -> list[str]:
    from genrekit.inference.batch import collect_audio_files

    paths = [path for path, problem in collect_audio_files([folder]) if not problem]
    return paths[:limit] if limit else paths


def decoded_windows(model, paths):
    """All windows of all clips, ``(n_windows, window_samples)`` float32, and the audio seconds."""
    import numpy as np

    from genrekit.audio.decode import load_audio
    from genrekit.audio.segments import segment_samples

    windows, seconds = [], 0.0
    for path in paths:
        audio = load_audio(path, model.sample_rate)
        seconds += audio.duration
        windows.append(segment_samples(audio.samples, model.sample_rate, window=model.window, hop=model.hop,
                                       last=model.segment.last).samples)
    return np.concatenate(windows), seconds


def time_inference(model, windows, batch_size: int) -> float:
    started = time.perf_counter()
    for first in range(0, len(windows), batch_size):
        model.segment_probabilities(windows[first:first + batch_size])
    return time.perf_counter() - started


def time_batch(model, paths, workers: int, batch_size: int) -> float:
    from genrekit.inference.batch import predict_files

    started = time.perf_counter()
    records = list(predict_files(paths, model, workers=workers, batch_size=batch_size))
    elapsed = time.perf_counter() - started
    failed = [r for r in records if "error" in r]
    if failed:
        raise SystemExit(f"benchmark clip failed: {failed[0]['error']}")
    return elapsed


def median_of(repeats: int, run) -> tuple[float, float, float]:
    """(first run, median of ``repeats`` further runs, median CPU seconds of this process) in seconds.

    The CPU time counts this process only (all its threads), not worker processes.
    """
    first = run()
    walls, cpus = [], []
    for _ in range(repeats):
        before = cpu_seconds()
        walls.append(run())
        cpus.append(cpu_seconds() - before)
    return first, statistics.median(walls), statistics.median(cpus)


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    args = parse_args()
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as importing genrekit does, before torch loads
    import torch

    from genrekit.inference.batch import default_threads
    from genrekit.inference.model import load_model
    from genrekit.models.files import model_paths

    if args.threads:
        torch.set_num_threads(args.threads)
    paths = clips_in(args.data, args.clips)
    cores = len(os.sched_getaffinity(0))
    print(f"{len(paths)} clips from {args.data}; {cores} cores, torch {torch.__version__}, "
          f"OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}; load average {os.getloadavg()[0]:.1f} at start")
    for name in args.model or ["default"]:
        model = load_model(name)
        json_path, weights_path = model_paths(model.source)
        size = json_path.stat().st_size + weights_path.stat().st_size
        decoded_windows(model, paths[:3])  # warm the page cache and the decoders
        before, started = cpu_seconds(), time.perf_counter()
        windows, seconds = decoded_windows(model, paths)
        decode_cpu, decode_wall = cpu_seconds() - before, time.perf_counter() - started
        n = len(paths)
        print(f"\nmodel {name} ({model.name}, {size / 1e6:.2f} MB, {model.sample_rate} Hz, "
              f"{model.window:g}-s windows): {len(windows)} windows, {seconds:.0f} s of audio")
        print(f"  {'decoding alone':<24} {decode_wall:7.2f} s  {n / decode_wall:6.1f} files/s  "
              f"{seconds / decode_wall:6.0f}x real time  CPU {1000 * decode_cpu / n:5.1f} ms/file  (one process)")
        pure = None
        for threads in sorted({args.threads or 1, args.threads or cores}):
            torch.set_num_threads(threads)
            first, took, cpu = median_of(args.repeats, lambda: time_inference(model, windows, args.batch_size))
            pure = took if pure is None else min(pure, took)
            print(f"  {f'pure inference, {threads} thr':<24} {took:7.2f} s  {n / took:6.1f} files/s  "
                  f"{seconds / took:6.0f}x real time  CPU {1000 * cpu / n:5.1f} ms/file  (first run {first:.2f} s)")
        for workers in args.workers:
            threads = args.threads or default_threads(workers)  # as genrekit predict does
            torch.set_num_threads(threads)
            first, batch, cpu = median_of(args.repeats, lambda: time_batch(model, paths, workers, args.batch_size))
            print(f"  {f'batch, {workers} wrk, {threads} thr':<24} {batch:7.2f} s  {n / batch:6.1f} files/s  "
                  f"{seconds / batch:6.0f}x real time  CPU {1000 * cpu / n:5.1f} ms/file  "
                  f"vs best pure {batch / pure - 1:+6.1%}  (first run {first:.2f} s)")
    print(f"\nload average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
