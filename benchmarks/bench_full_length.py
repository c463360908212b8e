"""Full-length tracks at the cost of a clip: the window budget (``max_windows``) measured.

Tracks: each genre's gtzan-mini clips (8 x 30 s) joined end to end into four-minute tracks, in
``--rotations`` different orders per genre (so the budget's windows fall on different music),
encoded as 192 kbps MP3 at 44.1 kHz stereo with PyAV (libmp3lame), as a library's files often
are; the first rotation of each genre also as FLAC. The 30-s clips themselves, encoded the same
way, are the reference cost. No recording outside gtzan-mini is used.

Measured, in one process with one torch thread, the model loaded once:

- **time per track**: ``model.predict(path, max_windows=N)`` for the default budget, 4, 16 and 0
  (every window), each long track timed right after a 30-s MP3 clip so that the load of a shared
  machine drifts alike for both; the fastest of ``--repeats`` runs per file (every window: one
  run), medians over files;
- **agreement**: for budgets ``--budgets``, the share of long tracks whose answer (genre, or not
  music) equals the full analysis'. Every window of a track is decoded and classified once
  (``read_windows`` + ``classify_segments``); each budget's answer is ``summarize`` over the
  windows ``budget_indices`` picks, as ``predict`` does (a budget's windows are the full read's
  windows: tests/test_windows.py); the default budget's answers also come from real
  ``model.predict`` calls, and both are reported;
- **peak memory**: maximum resident set size of ``genrekit predict FOLDER -f jsonl`` over the
  clips, the long MP3s with the default budget, and the long MP3s with ``--max-windows 0``,
  each in a fresh process (``ru_maxrss`` of the child).

Usage, from the repository root::

    .venv/bin/python benchmarks/bench_full_length.py [../shared/data/gtzan-mini] --out results.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "gtzan-mini"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("data", nargs="?", type=Path, default=DEFAULT_DATA, help="gtzan-mini folder")
    parser.add_argument("--model", default=None, help="bundled model name or model file (default: default)")
    parser.add_argument("--rotations", type=int, default=4, help="orders of each genre's clips (tracks per genre)")
    parser.add_argument("--budgets", type=int, nargs="+", default=[2, 4, 6, 8, 10, 12, 16], help="budgets to score")
    parser.add_argument("--workdir", type=Path, default=None, help="where to build the tracks (default: a temp dir)")
    parser.add_argument("--out", type=Path, default=None, help="write the figures here as JSON")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per file (the fastest is kept)")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory runs")
    return parser.parse_args()


def write_mp3(path: Path, samples: np.ndarray, sr: int, bit_rate: int = 192_000) -> None:
    """Mono ``samples`` as a 44.1 kHz stereo MP3 at ``bit_rate`` (PyAV, libmp3lame)."""
    import av
    import soxr

    stereo = soxr.resample(samples, sr, 44100).astype(np.float32)
    stereo = np.ascontiguousarray(np.stack([stereo, stereo]))
    with av.open(str(path), "w", format="mp3") as out:
        stream = out.add_stream("libmp3lame", rate=44100, layout="stereo")
        stream.bit_rate = bit_rate
        for start in range(0, stereo.shape[1], 1152):
            frame = av.AudioFrame.from_ndarray(stereo[:, start:start + 1152], format="fltp", layout="stereo")
            frame.sample_rate = 44100
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


def build_tracks(data: Path, workdir: Path, rotations: int) -> dict[str, list[Path]]:
    """``{"long_mp3": [...], "long_flac": [...], "clip_mp3": [...]}`` built under ``workdir``."""
    import soundfile as sf

    made: dict[str, list[Path]] = {"long_mp3": [], "long_flac": [], "clip_mp3": []}
    for folder in ("long_mp3", "long_flac", "clip_mp3"):
        (workdir / folder).mkdir(parents=True, exist_ok=True)
    for genre_dir in sorted(p for p in data.iterdir() if p.is_dir()):
        clips = sorted(genre_dir.glob("*.flac"))
        audio = [sf.read(clip, dtype="float32") for clip in clips]
        sr = audio[0][1]
        clip_path = workdir / "clip_mp3" / f"{clips[0].stem}.mp3"
        if not clip_path.exists():
            write_mp3(clip_path, audio[0][0], sr)
        made["clip_mp3"].append(clip_path)
        for rotation in range(rotations):
            order = [audio[(i + rotation * 2) % len(audio)][0] for i in range(len(audio))]
            joined = np.concatenate(order)
            path = workdir / "long_mp3" / f"{genre_dir.name}-{rotation}.mp3"
            if not path.exists():
                write_mp3(path, joined, sr)
            made["long_mp3"].append(path)
            if rotation == 0:
                flac = workdir / "long_flac" / f"{genre_dir.name}-{rotation}.flac"
                if not flac.exists():
                    sf.write(flac, joined, sr)
                made["long_flac"].append(flac)
    return made


def _seconds(path: Path) -> float:
    from genrekit.audio.decode import audio_info

    return audio_info(path).duration


def answer(prediction) -> str:
    from genrekit.evaluation.metrics import answer_name

    return answer_name(prediction)


def timed(model, path, repeats: int, **options):
    """``(fastest of `repeats` wall times of model.predict(path, **options), the prediction)``."""
    best, result = float("inf"), None
    for _ in range(repeats):
        started = time.perf_counter()
        result = model.predict(str(path), **options)
        best = min(best, time.perf_counter() - started)
    return best, result


def interleaved_timings(model, tracks: list[Path], clips: list[Path], budgets: list[int], repeats: int) -> dict:
    """For each long track, a 30-s clip and then the track at each budget (0: every window),
    timed back to back, so that the machine's load drifts alike for all of them."""
    times = {"clip": [], **{budget: [] for budget in budgets}}
    answers = {budget: [] for budget in budgets}
    for index, path in enumerate(tracks):
        times["clip"].append(timed(model, clips[index % len(clips)], repeats)[0])
        for budget in budgets:
            seconds, prediction = timed(model, path, 1 if budget == 0 else repeats, max_windows=budget)
            times[budget].append(seconds)
            answers[budget].append(answer(prediction))
    return {"times": times, "answers": answers}


def budget_answers(model, path: Path, budgets: list[int]) -> dict[int, str]:
    """Each budget's answer from one full read of the track (0: every window)."""
    from genrekit.audio.windows import budget_indices, read_windows
    from genrekit.inference.predict import classify_segments, summarize

    windows = read_windows(str(path), model.sample_rate, window=model.window, hop=model.hop,
                           last=model.segment.last)
    parts = [(b.starts, b.ends, *classify_segments(model, b.samples)) for b in windows]
    starts, ends, probabilities, silent = (np.concatenate([p[i] for p in parts]) for i in range(4))
    taggram = None if parts[0][4] is None else np.concatenate([p[4] for p in parts])
    out = {}
    for budget in [0, *budgets]:
        rows = budget_indices(len(starts), budget)
        out[budget] = answer(summarize(model, str(path), starts=starts[rows], ends=ends[rows],
                                       probabilities=probabilities[rows], silent=silent[rows],
                                       taggram=None if taggram is None else taggram[rows],
                                       duration=windows.duration))
    return out


def peak_memory_mb(folder: Path, model: str | None, max_windows: int | None) -> float:
    """Peak resident memory (MB) of one ``genrekit predict FOLDER`` process."""
    command = [sys.executable, "-m", "genrekit", "predict", str(folder), "-f", "jsonl"]  # stdout goes to DEVNULL below
    if model:
        command += ["--model", model]
    if max_windows is not None:
        command += ["--max-windows", str(max_windows)]
    wrapper = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, "
               "stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL); "
               "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    result = subprocess.run([sys.executable, "-c", wrapper, *command], capture_output=True, text=True, check=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    return int(result.stdout.strip()) / 1024


def main() -> None:
    args = parse_args()
    import torch

    from genrekit.audio.windows import DEFAULT_MAX_WINDOWS
    from genrekit.inference.model import load_model

    torch.set_num_threads(1)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="genrekit-full-length-"))
    tracks = build_tracks(args.data, workdir, args.rotations)
    model = load_model(args.model)
    long_tracks = tracks["long_mp3"] + tracks["long_flac"]
    model.predict(str(tracks["clip_mp3"][0]))  # warm-up: first-call costs are not a track's
    timed_budgets = sorted({4, DEFAULT_MAX_WINDOWS, 16, 0})
    mp3 = interleaved_timings(model, tracks["long_mp3"], tracks["clip_mp3"], timed_budgets, args.repeats)
    flac = interleaved_timings(model, tracks["long_flac"], tracks["clip_mp3"], [DEFAULT_MAX_WINDOWS, 0], args.repeats)
    real_default = mp3["answers"][DEFAULT_MAX_WINDOWS] + flac["answers"][DEFAULT_MAX_WINDOWS]
    real_full = mp3["answers"][0] + flac["answers"][0]
    sweep = [budget_answers(model, path, args.budgets) for path in long_tracks]
    agreement = {budget: float(np.mean([s[budget] == s[0] for s in sweep])) for budget in args.budgets}
    clip = statistics.median(mp3["times"]["clip"])
    report = {
        "model": model.name,
        "default_max_windows": DEFAULT_MAX_WINDOWS,
        "tracks": {kind: len(paths) for kind, paths in tracks.items()},
        "long_track_seconds": round(statistics.median(_seconds(p) for p in long_tracks), 1),
        "timing": f"fastest of {args.repeats} runs per file (every window: 1 run), medians over files; "
                  "each long track timed right after a 30-s clip",
        "seconds_per_track": {
            "clip_mp3_30s": round(clip, 3),
            **{f"long_mp3_max_windows_{b}": round(statistics.median(mp3["times"][b]), 3) for b in timed_budgets},
            "long_flac_default": round(statistics.median(flac["times"][DEFAULT_MAX_WINDOWS]), 3),
            "long_flac_every_window": round(statistics.median(flac["times"][0]), 3),
        },
        "long_mp3_over_clip": {b: round(statistics.median(mp3["times"][b]) / clip, 2) for b in timed_budgets},
        "agreement_with_every_window": {
            "default_budget_predict_calls": float(np.mean([a == b for a, b in zip(real_default, real_full)])),
            "by_budget_from_one_full_read": agreement,
            "full_read_equals_predict_every_window": float(np.mean([s[0] == f for s, f in zip(sweep, real_full)])),
        },
        "disagreeing_tracks_default": [str(p.name) for p, a, b in zip(long_tracks, real_default, real_full) if a != b],
        "torch_threads": 1,
        "cpu": os.cpu_count(),
        "load_average": os.getloadavg(),
    }
    if not args.no_memory:
        report["peak_rss_mb"] = {
            "clips": round(peak_memory_mb(workdir / "clip_mp3", args.model, None), 0),
            "long_mp3_default": round(peak_memory_mb(workdir / "long_mp3", args.model, None), 0),
            "long_mp3_every_window": round(peak_memory_mb(workdir / "long_mp3", args.model, 0), 0),
        }
    text = json.dumps(report, indent=1)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
