"""Feature extraction throughput: genrekit (decode + torch features) vs the plain librosa pipeline.

Both pipelines do the same work per clip: decode (and resample when ``--sr`` differs from the
file's rate), then a log-mel spectrogram (128 bands, dB, top_db 80) and 20 MFCCs, each from its
own STFT (n_fft 2048, hop 512):

- librosa, as the classic GTZAN scripts do: ``librosa.load(path, sr=sr)``, then
  ``librosa.feature.mfcc(y=y, sr=sr, n_mfcc=20)`` and
  ``librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=sr))`` on the whole clip;
- genrekit: ``genrekit.audio.load_audio``, the clip cut into ``--window``-second segments and
  all segments of ``--batch-clips`` clips run through `LogMel` and `MFCC` as one batch.

Both pipelines are warmed up first (librosa's first call compiles numba code). Each repeat
times one pass over the clips per pipeline, the pipelines taking turns; the per-clip figure
is the median over repeats of (pass time / clips). "cpu" is the process CPU time (all threads)
per clip, which depends less on other jobs than wall time does.

Usage, from the repository root::

    .venv/bin/python benchmarks/bench_features.py [../shared/data/gtzan-mini] [--clips 40]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "gtzan-mini"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("data", nargs="?", type=Path, default=DEFAULT_DATA,
                        help="folder of audio clips (searched recursively for .flac/.wav)")
    parser.add_argument("--clips", type=int, default=40, help="clips to time (default 40)")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes (default 3)")
    parser.add_argument("--sr", type=int, default=22050, help="target sample rate in Hz")
    parser.add_argument("--window", type=float, default=3.0, help="segment length in seconds")
    parser.add_argument("--batch-clips", type=int, default=1,
                        help="clips whose segments form one torch batch (default 1)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    return parser.parse_args()


def find_clips(data: Path, count: int) -> list[Path]:
    clips = sorted(p for p in data.rglob("*") if p.suffix.lower() in {".flac", ".wav"})
    if not clips:
        raise SystemExit(f"{data}: no .flac or .wav files")
    return clips[:count]


class Stopwatch:
    """Sums wall time per named stage."""

    def __init__(self):
        self.seconds: dict[str, float] = {}

    def time(self, stage: str, function, *args, **kwargs):
        start = time.perf_counter()
        result = function(*args, **kwargs)
        self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - start
        return result


def run_librosa(clips: list[Path], sr: int, watch: Stopwatch) -> None:
    import librosa

    for path in clips:
        y, _ = watch.time("decode", librosa.load, path, sr=sr)
        watch.time("mfcc", librosa.feature.mfcc, y=y, sr=sr, n_mfcc=20)
        mel = watch.time("logmel", librosa.feature.melspectrogram, y=y, sr=sr)
        watch.time("logmel", librosa.power_to_db, mel)


def decode_batch(paths: list[Path], sr: int, window: float) -> np.ndarray:
    from genrekit.audio.decode import load_audio
    from genrekit.audio.segments import segment_samples

    clips = [load_audio(path, sr=sr).samples for path in paths]
    return np.concatenate([segment_samples(y, sr, window=window).samples for y in clips])


def run_genrekit(clips, sr, watch, *, window, batch_clips, logmel, mfcc, prefetch=False) -> None:
    """Decode, segment and batch; with ``prefetch`` the next batch is decoded in a thread
    (libsndfile and soxr release the GIL) while torch computes the features of this one."""
    import torch

    batches = [clips[i : i + batch_clips] for i in range(0, len(clips), batch_clips)]
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(decode_batch, batches[0], sr, window) if prefetch else None
        for i, paths in enumerate(batches):
            if prefetch:
                segments = watch.time("decode", pending.result)
                if i + 1 < len(batches):
                    pending = pool.submit(decode_batch, batches[i + 1], sr, window)
            else:
                segments = watch.time("decode", decode_batch, paths, sr, window)
            with torch.inference_mode():
                batch = torch.from_numpy(segments)
                watch.time("mfcc", mfcc, batch)
                watch.time("logmel", logmel, batch)


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def time_pass(pipeline, clips: list[Path]) -> dict[str, float]:
    """Seconds per clip of one pass: per stage, wall total and process CPU (all threads)."""
    watch = Stopwatch()
    wall, cpu = time.perf_counter(), cpu_seconds()
    pipeline(clips, watch)
    wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
    seconds = {**watch.seconds, "total": wall, "cpu": cpu}
    return {key: value / len(clips) for key, value in seconds.items()}


def measure(pipelines: dict, clips: list[Path], repeats: int) -> dict[str, dict[str, float]]:
    """Median over repeats per pipeline; the pipelines take turns within each repeat so that
    a change in the machine's load affects them alike."""
    passes = {name: [] for name in pipelines}
    for _ in range(repeats):
        for name, pipeline in pipelines.items():
            passes[name].append(time_pass(pipeline, clips))
    return {
        name: {key: statistics.median(p[key] for p in runs) for key in runs[0]}
        for name, runs in passes.items()
    }


def main() -> None:
    args = parse_args()
    import torch

    from genrekit.features.spectral import MFCC, LogMel

    torch.set_num_threads(args.threads)
    clips = find_clips(args.data, args.clips)
    logmel, mfcc = LogMel(sr=args.sr), MFCC(sr=args.sr, n_mfcc=20)

    def genrekit(prefetch):
        return lambda paths, watch: run_genrekit(
            paths, args.sr, watch, window=args.window, batch_clips=args.batch_clips,
            logmel=logmel, mfcc=mfcc, prefetch=prefetch,
        )

    pipelines = {
        "librosa": lambda paths, watch: run_librosa(paths, args.sr, watch),
        "genrekit": genrekit(prefetch=False),
        "genrekit+prefetch": genrekit(prefetch=True),
    }
    for pipeline in pipelines.values():  # warm-up: numba JIT, torch kernels, allocator
        pipeline(clips[: max(2, args.batch_clips)], Stopwatch())
    results = measure(pipelines, clips, args.repeats)
    print_table(results, args, len(clips))


def print_table(results: dict[str, dict[str, float]], args, n_clips: int) -> None:
    import librosa
    import torch

    print(f"{n_clips} clips from {args.data}, sr={args.sr}, window={args.window}s, "
          f"{args.batch_clips} clip(s) per batch, median of {args.repeats} repeats, "
          f"torch threads={torch.get_num_threads()}, librosa {librosa.__version__}, "
          f"torch {torch.__version__}")
    columns = ["decode", "mfcc", "logmel", "total", "cpu"]
    print(f"{'ms per clip':<20}" + "".join(f"{c:>9}" for c in columns) + f"{'speed-up':>10}")
    baseline = results["librosa"]["total"]
    for name, result in results.items():
        cells = "".join(f"{1000 * result[c]:>9.1f}" for c in columns)
        print(f"{name:<20}{cells}{baseline / result['total']:>9.1f}x")
    print("(prefetch row: 'decode' is time spent waiting for the decoder thread)")


if __name__ == "__main__":
    main()
