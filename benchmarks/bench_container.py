"""The container image's size, build time and cold start to a healthy ``/healthz``.

Uses the Docker engine that answers (``$DOCKER_HOST`` or the default socket), else starts the
private one of ``docker/engine`` (and stops it at the end), as ``tests/test_container.py`` does.
Steps, each timed with the wall clock:

- ``docker/wheelhouse`` (instant when the wheels are up to date);
- with ``--cold``: ``docker build --no-cache`` (every stage from ``debian:bookworm-slim``: apt,
  pip install from the wheelhouse, musicnn conversion; the base image itself is not pulled);
- ``docker/build`` with everything cached, and after a one-line edit of the genrekit sources (in
  a copy of the build context: only genrekit's install, the weight conversion and the last layers
  run again);
- the image's size: total, per layer, the largest installed packages, and gzip-compressed
  ``docker save`` (about what a registry transfers);
- ``--starts`` cold starts: ``docker run -d --read-only --tmpfs /tmp ... serve`` until ``/healthz``
  answers 200, then the first and a second ``/v1/predict`` of a gtzan-mini clip, the container's
  memory, and ``docker stop`` (SIGTERM) until it has exited.

Usage, from the repository root (containers listen on 127.0.0.1 only)::

    .venv/bin/python benchmarks/bench_container.py [--cold] [--starts 5] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
ENGINE = ROOT / "docker" / "engine"
CLIP = ROOT.parent / "shared" / "data" / "gtzan-mini" / "blues" / "blues.00003.flac"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--image", default="genrekit-bench", help="image name to build (default genrekit-bench)")
    parser.add_argument("--cold", action="store_true", help="also time a build without any cache (minutes)")
    parser.add_argument("--starts", type=int, default=5, help="cold starts to time (default 5)")
    parser.add_argument("--no-compressed", action="store_true", help="skip the gzip of docker save (about a minute)")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    return parser.parse_args()


def run(args, env, **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run(args, env=env, text=True, capture_output=True, **kwargs)
    if done.returncode != 0:
        sys.exit(f"{' '.join(map(str, args))} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done


def timed(args, env) -> float:
    started = time.perf_counter()
    run(args, env)
    return time.perf_counter() - started


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def engine() -> tuple[dict, bool]:
    env = dict(os.environ, PYTHON=sys.executable)
    if subprocess.run(["docker", "version"], env=env, capture_output=True).returncode == 0:
        return env, False
    env["DOCKER_HOST"] = run([ENGINE, "start"], env).stdout.strip().splitlines()[-1]
    return env, True


def context_copy(folder: Path) -> Path:
    """The build context with a one-line edit of the sources; the wheels are hard links."""
    files = run(["git", "-C", str(ROOT), "ls-files", "pyproject.toml", "README.md", "LICENSE", "CHANGELOG.md",
                 "MANIFEST.in", "src", "docker", ".dockerignore",
                 "Dockerfile"], os.environ).stdout.split()
    for wheels in ("wheels", "wheels-ray"):
        shutil.copytree(ROOT / "docker" / wheels, folder / "docker" / wheels, copy_function=os.link)
    for name in files:
        if not (folder / name).exists():  # the wheel folders' .gitignore files are linked already
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, folder / name)
    with open(folder / "src" / "genrekit" / "__init__.py", "a") as handle:
        handle.write(f"# benchmark edit {time.time()}\n")
    return folder


def size_report(image: str, env, compressed: bool) -> dict:
    info = json.loads(run(["docker", "image", "inspect", image], env).stdout)[0]
    history = run(["docker", "history", "--no-trunc", "--format", "{{.Size}}\t{{.CreatedBy}}", image], env).stdout
    layers = [line.split("\t", 1) for line in history.splitlines() if not line.startswith("0B")]
    script = ("cd /opt/genrekit/venv/lib/python3.11/site-packages && du -sm * | sort -rn | head -12; "
              "echo; du -sm /opt/genrekit/venv /opt/genrekit/cache /usr/lib/python3.11 | sort -rn; echo; "
              "find /opt/genrekit/venv -name '*.pyc' -printf '%s\\n' | awk '{s+=$1} END {printf \"%d\\t.pyc files\\n\", s/1e6}'")
    usage = run(["docker", "run", "--rm", "--network", "none", "--entrypoint", "sh", image, "-c", script], env).stdout
    report = {"bytes": info["Size"], "layers": [[size, command[:140]] for size, command in layers], "usage_mb": usage}
    if compressed:
        save = subprocess.Popen(["docker", "save", image], env=env, stdout=subprocess.PIPE)
        gzip = subprocess.run(["gzip", "-c"], stdin=save.stdout, stdout=subprocess.PIPE, check=True)
        save.wait()
        report["gzip_bytes"] = len(gzip.stdout)
    return report


def cold_start(image: str, env) -> dict:
    port = free_port()
    name = f"genrekit-bench-{port}"
    started = time.perf_counter()
    run(["docker", "run", "-d", "--name", name, "--network", "host", "--read-only", "--tmpfs", "/tmp",
         "--no-healthcheck", image, "serve", "--host", "127.0.0.1", "--port", str(port)], env)
    url = f"http://127.0.0.1:{port}"
    try:
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.perf_counter() - started > 180:
                sys.exit("no /healthz within 180 s:\n" + run(["docker", "logs", name], env).stderr)
            time.sleep(0.05)
        healthy = time.perf_counter() - started
        requests = []
        for _ in range(2):
            t0 = time.perf_counter()
            with open(CLIP, "rb") as handle:
                response = httpx.post(f"{url}/v1/predict", files={"file": (CLIP.name, handle)}, timeout=120)
            response.raise_for_status()
            requests.append(time.perf_counter() - t0)
        memory = run(["docker", "stats", "--no-stream", "--format", "{{.MemUsage}}", name], env).stdout.split("/")[0].strip()
        t0 = time.perf_counter()
        run(["docker", "stop", "--time", "30", name], env)
        stop = time.perf_counter() - t0
        code = run(["docker", "inspect", "-f", "{{.State.ExitCode}}", name], env).stdout.strip()
        return {"healthy_s": healthy, "first_predict_s": requests[0], "second_predict_s": requests[1],
                "memory": memory, "stop_s": stop, "exit_code": int(code)}
    finally:
        subprocess.run(["docker", "rm", "-f", name], env=env, capture_output=True)


def main() -> None:
    args = parse_args()
    env, started_engine = engine()
    figures: dict = {"date": time.strftime("%Y-%m-%d %H:%M"), "load_before": os.getloadavg()[0]}
    try:
        run([ENGINE, "base"], env)
        build_env = dict(env, GENREKIT_IMAGE=args.image)
        figures["wheelhouse_s"] = timed([ROOT / "docker" / "wheelhouse"], build_env)
        legacy = dict(build_env, DOCKER_BUILDKIT="0")
        if args.cold:
            figures["build_cold_s"] = timed(["docker", "build", "--no-cache", "--force-rm", "--network", "host",
                                             "-t", f"{args.image}:latest", str(ROOT)], legacy)
        figures["build_cached_s"] = timed([ROOT / "docker" / "build", "--", "--network", "host", "--force-rm"], build_env)
        with tempfile.TemporaryDirectory(dir=ROOT / "docker") as folder:  # same file system: hard links
            context = context_copy(Path(folder))
            figures["build_after_source_edit_s"] = timed(
                ["docker", "build", "--force-rm", "--network", "host", "-t", f"{args.image}:edit", str(context)], legacy)
        run(["docker", "rmi", f"{args.image}:edit"], env)
        figures["size"] = size_report(f"{args.image}:latest", env, not args.no_compressed)
        figures["version_s"] = timed(["docker", "run", "--rm", "--network", "none", "--read-only",
                                      f"{args.image}:latest", "--version"], env)
        figures["starts"] = [cold_start(f"{args.image}:latest", env) for _ in range(args.starts)]
        figures["load_after"] = os.getloadavg()[0]
    finally:
        if started_engine:
            subprocess.run([ENGINE, "stop"], env=env)
    print_report(figures)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1) + "\n")


def print_report(figures: dict) -> None:
    size = figures["size"]
    print(f"{figures['date']}, load average {figures['load_before']:.1f} -> {figures['load_after']:.1f}")
    print(f"image: {size['bytes'] / 1e6:.0f} MB" + (f", {size['gzip_bytes'] / 1e6:.0f} MB gzip-compressed" if "gzip_bytes" in size else ""))
    for layer_size, command in size["layers"]:
        print(f"  {layer_size:>8}  {command}")
    print(size["usage_mb"])
    print(f"wheelhouse: {figures['wheelhouse_s']:.1f} s")
    for key in ("build_cold_s", "build_cached_s", "build_after_source_edit_s"):
        if key in figures:
            print(f"{key}: {figures[key]:.1f} s")
    print(f"docker run --rm IMAGE --version: {figures['version_s']:.2f} s")
    starts = figures["starts"]
    for key in ("healthy_s", "first_predict_s", "second_predict_s", "stop_s"):
        values = [s[key] for s in starts]
        print(f"{key}: median {statistics.median(values):.2f} s (min {min(values):.2f}, max {max(values):.2f}, n={len(values)})")
    print("memory after two requests:", ", ".join(s["memory"] for s in starts))
    print("exit codes after docker stop:", ", ".join(str(s["exit_code"]) for s in starts))


if __name__ == "__main__":
    main()
