"""Bounded load test of ``genrekit serve`` on loopback: latency, errors, memory, leaked uploads.

Starts the real ``genrekit serve`` command in a subprocess on a free 127.0.0.1 port (its
temporary folder redirected to a private one, so that leaked uploads can be counted), sends one
warm-up request, then ``--requests`` uploads at ``--concurrency`` with httpx, cycling through the
audio clips of ``--data``; every ``--bad-every``-th upload is a text file, which must get a 422.
It reports latency percentiles of the successful predictions, unexpected answers, the server's
resident memory (VmRSS) after warm-up and after the load, and files left in its upload folder.
Traffic goes to 127.0.0.1 only; the run stops issuing requests after ``--time-limit`` seconds.

Usage, from the repository root::

    .venv/bin/python benchmarks/bench_service.py [--model PATH] [--requests 200] [--concurrency 8]

Without ``--model`` the bundled default model is used when this genrekit has one, else a tiny
untrained log-mel CNN built on the spot (its speed is representative of the service overhead,
not of a real model).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "gtzan-mini"
NOT_AUDIO = b"this is a shopping list, not a song\n" * 50


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder of audio clips (searched recursively)")
    parser.add_argument("--model", help="model file (default: bundled default model, else a tiny random one)")
    parser.add_argument("--requests", type=int, default=200, help="uploads to send (default 200)")
    parser.add_argument("--concurrency", type=int, default=8, help="uploads in flight at once (default 8)")
    parser.add_argument("--workers", type=int, default=2, help="server inference workers (default 2)")
    parser.add_argument("--queue-limit", type=int, default=8, help="server queue limit (default 8)")
    parser.add_argument("--bad-every", type=int, default=10, help="every N-th upload is not audio (0: none)")
    parser.add_argument("--segments", action="store_true", help="ask for the per-segment timeline")
    parser.add_argument("--time-limit", type=float, default=600.0, help="stop sending after this many seconds")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    return parser.parse_args()


def tiny_model(folder: Path) -> Path:
    import torch

    from genrekit.models.files import save_model
    from genrekit.models.registry import build_model

    genres = ["blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock"]
    torch.manual_seed(0)
    network = build_model({"name": "cnn2d", "input_shape": [64, 130], "channels": [4, 8], "hidden": 0,
                           "dropout": 0.0}, n_classes=len(genres))
    spec = {"name": "tiny-untrained", "labels": genres, "sample_rate": 22050,
            "segment": {"window": 3.0, "hop": 3.0, "last": "pad"},
            "feature": {"name": "logmel", "n_mels": 64}, "architecture": network.spec}
    return save_model(folder / "tiny", spec, {f"network.{k}": v for k, v in network.state_dict().items()})


def choose_model(requested: str | None, folder: Path) -> str:
    from genrekit.models.files import default_model_path

    if requested:
        return requested
    if default_model_path().is_file():
        return str(default_model_path())
    return str(tiny_model(folder))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def leftover_uploads(tmp: Path) -> int:
    return sum(1 for folder in tmp.glob("genrekit-uploads-*") for _ in folder.iterdir())


def start_server(model: str, args, tmp: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    command = [sys.executable, "-m", "genrekit", "serve", "--model", model, "--port", str(port),
               "--workers", str(args.workers), "--queue-limit", str(args.queue_limit)]
    process = subprocess.Popen(command, env={**os.environ, "TMPDIR": str(tmp)},
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    for _ in range(600):
        if process.poll() is not None:
            raise SystemExit(f"genrekit serve exited with {process.returncode}")
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return process, base
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit("genrekit serve did not start within 120 s")


async def load(base: str, clips: list[Path], args) -> tuple[list[float], Counter, float]:
    payloads = [(clip.name, clip.read_bytes()) for clip in clips]
    limit = asyncio.Semaphore(args.concurrency)
    latencies: list[float] = []
    outcomes: Counter = Counter()
    query = "?segments=true" if args.segments else ""
    started = time.perf_counter()

    async def one(index: int, client: httpx.AsyncClient) -> None:
        bad = args.bad_every and (index + 1) % args.bad_every == 0
        name, data = ("notes.txt", NOT_AUDIO) if bad else payloads[index % len(payloads)]
        async with limit:
            if time.perf_counter() - started > args.time_limit:
                outcomes["not sent (time limit)"] += 1
                return
            t0 = time.perf_counter()
            try:
                response = await client.post(f"{base}/v1/predict{query}", files={"file": (name, data)})
            except httpx.HTTPError as exc:
                outcomes[f"transport error {type(exc).__name__}"] += 1
                return
            elapsed = time.perf_counter() - t0
        expected = 422 if bad else 200
        outcomes["ok" if response.status_code == expected else f"unexpected {response.status_code}"] += 1
        if not bad and response.status_code == 200:
            latencies.append(elapsed)

    async with httpx.AsyncClient(timeout=300) as client:
        await asyncio.gather(*(one(i, client) for i in range(args.requests)))
    return latencies, outcomes, time.perf_counter() - started


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))] if ordered else float("nan")


def main() -> None:
    args = parse_args()
    clips = sorted(p for p in args.data.rglob("*") if p.suffix.lower() in (".flac", ".wav", ".mp3"))
    if not clips:
        raise SystemExit(f"no audio clips under {args.data}")
    with tempfile.TemporaryDirectory(prefix="bench-service-") as scratch:
        scratch = Path(scratch)
        model = choose_model(args.model, scratch)
        server_tmp = scratch / "server-tmp"
        server_tmp.mkdir()
        process, base = start_server(model, args, server_tmp)
        try:
            model_name = httpx.get(f"{base}/v1/models").json()["models"][0]["name"]
            warm = httpx.post(f"{base}/v1/predict", files={"file": (clips[0].name, clips[0].read_bytes())}, timeout=300)
            warm.raise_for_status()
            rss_before = rss_mib(process.pid)
            latencies, outcomes, wall = asyncio.run(load(base, clips, args))
            rss_after = rss_mib(process.pid)
            leaked = leftover_uploads(server_tmp)
        finally:
            process.terminate()
            process.wait(timeout=30)
        folder_removed = not list(server_tmp.glob("genrekit-uploads-*"))

    figures = {
        "model": model_name, "requests": args.requests, "concurrency": args.concurrency,
        "workers": args.workers, "queue_limit": args.queue_limit, "bad_every": args.bad_every,
        "segments": args.segments, "clips": len(clips), "wall_s": round(wall, 2),
        "throughput_rps": round(args.requests / wall, 2),
        "latency_p50_s": round(percentile(latencies, 50), 3), "latency_p95_s": round(percentile(latencies, 95), 3),
        "latency_max_s": round(max(latencies, default=float("nan")), 3),
        "outcomes": dict(outcomes), "errors": sum(n for k, n in outcomes.items() if k != "ok"),
        "rss_after_warmup_mib": round(rss_before, 1), "rss_after_load_mib": round(rss_after, 1),
        "leaked_upload_files": leaked, "upload_folder_removed_at_exit": folder_removed,
        "cpu_count": os.cpu_count(),
    }
    for key, value in figures.items():
        print(f"{key:>30}: {value}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
