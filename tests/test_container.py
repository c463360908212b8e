"""The container image: build it, serve from it, run a batch job in it (marker ``container``).

Uses the Docker engine that answers (``$DOCKER_HOST`` or the default socket); where none does, it
installs Debian's docker.io if it can (root + apt) and starts a private one with ``docker/engine``,
stopped again at the end. Where no engine can be had the tests are SKIPPED with the reason.
``GENREKIT_SKIP_CONTAINER=1`` skips them on purpose. The image is built with ``docker/build`` (the
wheelhouse, then ``docker build``): the first build takes minutes, later ones reuse the engine's
build cache in ``~/.cache/genrekit-docker``. Containers use ``--network host`` and listen on
127.0.0.1 only. ``GENREKIT_CONTAINER_RAY=1`` also builds and tries the Ray variant.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.container

ROOT = Path(__file__).resolve().parents[1]
ENGINE = ROOT / "docker" / "engine"
BUILD = ROOT / "docker" / "build"
IMAGE = "genrekit-ci"
UID = "10001"
CLIP = Path("blues") / "blues.00003.flac"  # a gtzan-mini clip (path under ../shared/data/gtzan-mini)

if os.environ.get("GENREKIT_SKIP_CONTAINER") == "1":
    pytest.skip("GENREKIT_SKIP_CONTAINER=1: container tests skipped on request", allow_module_level=True)


def run(args, *, env=None, timeout=600, check=True, **kwargs) -> subprocess.CompletedProcess:
    """Run a command, text in and out; on failure the message holds its output."""
    done = subprocess.run(args, env=env, timeout=timeout, text=True, capture_output=True, **kwargs)
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, args))} exited {done.returncode}\n"
                             f"--- stdout\n{done.stdout[-4000:]}\n--- stderr\n{done.stderr[-4000:]}")
    return done


def last_words(text: str, limit: int = 500) -> str:
    """The end of a command's output on one line, for a skip reason."""
    return " ".join(text.split())[-limit:]


def engine_answers(env) -> bool:
    try:
        return run(["docker", "version"], env=env, timeout=30, check=False).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def state_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(os.environ.get("GENREKIT_DOCKER_STATE") or Path(base) / "genrekit-docker")


@pytest.fixture(scope="module")
def docker_env():
    """The environment for `docker` commands: an engine that answers, started here if need be."""
    env = dict(os.environ)
    if shutil.which("docker") and engine_answers(env):
        yield env
        return
    if not ENGINE.is_file():
        pytest.skip("no container engine answers and docker/engine is missing")
    installed = run([ENGINE, "install"], timeout=900, check=False)
    if installed.returncode != 0:
        pytest.skip(f"no container engine answers and none could be installed: {last_words(installed.stderr)}")
    state = state_dir()
    state.mkdir(parents=True, exist_ok=True)
    with open(state / "test.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one test run at a time uses the private engine
        started = run([ENGINE, "start"], timeout=120, check=False)
        try:
            if started.returncode != 0:
                pytest.skip(f"no container engine could be started: {last_words(started.stderr)}")
            env["DOCKER_HOST"] = started.stdout.strip().splitlines()[-1]
            yield env
        finally:
            stopped = run([ENGINE, "stop"], timeout=120, check=False)
            if stopped.returncode != 0:
                print(f"docker/engine stop failed: {stopped.stderr}", file=sys.stderr)


@pytest.fixture(scope="module")
def image(docker_env) -> str:
    """The image, built from this checkout (tag genrekit-ci:latest)."""
    based = run([ENGINE, "base"], env=docker_env, timeout=900, check=False)
    if based.returncode != 0:
        pytest.skip(f"the engine has no debian:bookworm-slim and could not make one: {last_words(based.stderr)}")
    env = dict(docker_env, GENREKIT_IMAGE=IMAGE, PYTHON=sys.executable)
    started = time.perf_counter()
    run([BUILD, "--", "--network", "host", "--force-rm"], env=env, timeout=3600)
    print(f"image built in {time.perf_counter() - started:.0f} s")
    keep_build_cache(env, ray=False)
    return f"{IMAGE}:latest"


def keep_build_cache(env, ray: bool) -> None:
    """Tag the images of the build stages, then drop the untagged images of older builds.

    The legacy builder's cache is the intermediate images of the build stages, left untagged;
    tagged (a cached build, seconds) they survive the prune, so that the engine's store does not
    grow with every change while the next run stays cached.
    """
    suffix = "-ray" if ray else ""
    for stage in ("deps", "build"):
        run(["docker", "build", "-q", "--network", "host", "--force-rm", "--build-arg", f"RAY={int(ray)}",
             "--target", stage, "-t", f"{IMAGE}:stage-{stage}{suffix}", str(ROOT)],
            env=dict(env, DOCKER_BUILDKIT="0"), timeout=3600)
    run(["docker", "image", "prune", "-f"], env=env)


def docker(docker_env, *args, **kwargs) -> subprocess.CompletedProcess:
    return run(["docker", *args], env=docker_env, **kwargs)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def local_prediction(path: Path) -> dict:
    """What `genrekit predict` on this machine (this checkout's code) says for ``path``."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")])))
    done = run([sys.executable, "-m", "genrekit", "--quiet", "predict", str(path), "--format", "json"], env=env)
    return json.loads(done.stdout)


def test_image_metadata(docker_env, image):
    info = json.loads(docker(docker_env, "image", "inspect", image).stdout)[0]
    config = info["Config"]
    assert config["User"] == f"{UID}:{UID}"
    assert config["Entrypoint"] == ["tini", "--", "genrekit"]
    assert config["Cmd"][:3] == ["serve", "--host", "0.0.0.0"]
    assert "8000/tcp" in config["ExposedPorts"]
    assert "/healthz" in " ".join(config["Healthcheck"]["Test"])
    assert "GENREKIT_CACHE_DIR=/opt/genrekit/cache" in config["Env"]
    labels = config["Labels"]
    for key in ("title", "description", "version", "revision", "created", "licenses"):
        assert labels.get(f"org.opencontainers.image.{key}"), key
    assert labels["org.opencontainers.image.revision"] == run(["git", "-C", str(ROOT), "rev-parse", "HEAD"]).stdout.strip()
    print(f"image size {info['Size'] / 1e6:.0f} MB")


def test_runs_as_non_root_and_keeps_no_build_tools(docker_env, image):
    script = ("id -u; id -g; "
              "for tool in pip pip3 gcc cc; do command -v $tool >/dev/null && echo has-$tool; done; "
              "touch /opt/genrekit/x 2>/dev/null && echo wrote-opt; "
              "ls /opt/genrekit/cache/musicnn /opt/genrekit/venv/lib/python3.11/site-packages/genrekit/assets/musicnn")
    done = docker(docker_env, "run", "--rm", "--network", "none", "--read-only", "--entrypoint", "sh", image, "-c", script)
    lines = done.stdout.split()
    assert lines[:2] == [UID, UID]
    assert not [line for line in lines if line.startswith(("has-pip", "has-gcc", "has-cc", "wrote-"))], lines
    # the default model's backbone ships with genrekit; the other three were converted at build time
    assert "MSD_musicnn.safetensors" in lines and "MSD_musicnn.json" not in lines
    for name in ("MTT_musicnn", "MSD_vgg", "MTT_vgg"):
        assert f"{name}.safetensors" in lines and f"{name}.json" in lines
    # the package is started both ways: the genrekit command and python -m genrekit
    version = docker(docker_env, "run", "--rm", "--network", "none", "--read-only", "--entrypoint", "python",
                     image, "-m", "genrekit", "--version").stdout
    assert version.startswith("genrekit ")


@pytest.fixture(scope="module")
def server(docker_env, image):
    """`genrekit serve` in a read-only container with a tmpfs for uploads, on a free loopback port."""
    port = free_port()
    name = f"genrekit-test-{uuid.uuid4().hex[:8]}"
    docker(docker_env, "run", "-d", "--name", name, "--network", "host", "--read-only", "--tmpfs", "/tmp",
           "--health-interval", "1s", "-e", f"GENREKIT_HEALTHCHECK_URL=http://127.0.0.1:{port}/healthz",
           image, "serve", "--host", "127.0.0.1", "--port", str(port))
    url = f"http://127.0.0.1:{port}"
    try:
        started, deadline = time.perf_counter(), time.monotonic() + 180
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            state = docker(docker_env, "inspect", "-f", "{{.State.Status}}", name).stdout.strip()
            if state != "running" or time.monotonic() > deadline:
                logs = docker(docker_env, "logs", name, check=False)
                pytest.fail(f"the service never answered /healthz (container {state}):\n{logs.stdout}{logs.stderr}")
            time.sleep(0.25)
        print(f"/healthz answered {time.perf_counter() - started:.1f} s after docker run")
        yield {"url": url, "name": name}
    finally:
        docker(docker_env, "rm", "-f", name, check=False)


def test_service_health_and_predict(docker_env, server, gtzan_mini):
    body = httpx.get(f"{server['url']}/healthz", timeout=10).json()
    assert body["status"] == "ok"
    clip = gtzan_mini / CLIP
    with open(clip, "rb") as handle:
        response = httpx.post(f"{server['url']}/v1/predict", files={"file": (clip.name, handle, "audio/flac")},
                              params={"top_k": 3}, timeout=120)
    assert response.status_code == 200, response.text
    served = response.json()
    local = local_prediction(clip)
    assert served["path"] == clip.name
    assert served["genre"] == local["genre"], (served, local)
    assert served["confidence"] == pytest.approx(local["confidence"], abs=0.02)
    # the image's own HEALTHCHECK (run every second here) sees the service as healthy
    deadline = time.monotonic() + 60
    while (status := docker(docker_env, "inspect", "-f", "{{.State.Health.Status}}", server["name"]).stdout.strip()) != "healthy":
        assert time.monotonic() < deadline, f"health status {status}"
        time.sleep(0.5)
    # the weights were converted at build time: nothing is converted (or written) on a request
    logs = docker(docker_env, "logs", server["name"])
    assert "converting" not in logs.stdout + logs.stderr
    assert "Traceback" not in logs.stdout + logs.stderr


def test_service_stops_gracefully_on_sigterm(docker_env, server):
    started = time.perf_counter()
    docker(docker_env, "stop", "--time", "30", server["name"])
    seconds = time.perf_counter() - started
    code = int(docker(docker_env, "inspect", "-f", "{{.State.ExitCode}}", server["name"]).stdout)
    # uvicorn shuts down, then re-raises SIGTERM: 143 (128 + 15); 137 would be the SIGKILL after --time
    assert code in (0, 143), code
    assert seconds < 20, f"docker stop took {seconds:.1f} s"
    logs = docker(docker_env, "logs", server["name"])
    assert "Traceback" not in logs.stdout + logs.stderr


def test_batch_predict_on_a_read_only_mount(docker_env, image, gtzan_mini):
    folder = gtzan_mini / CLIP.parent
    files = sorted(p for p in folder.iterdir() if p.suffix == ".flac")
    done = docker(docker_env, "run", "--rm", "--network", "none", "--read-only", "--tmpfs", "/tmp",
                  "--no-healthcheck", "-v", f"{folder}:/music:ro", image, "predict", "/music", "-f", "jsonl",
                  timeout=600)
    records = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    assert sorted(r["path"] for r in records) == [f"/music/{p.name}" for p in files]
    assert all("genre" in r and "error" not in r for r in records), records
    batch = {Path(r["path"]).name: r for r in records}
    assert batch[CLIP.name]["genre"] == local_prediction(gtzan_mini / CLIP)["genre"]


@pytest.mark.skipif(os.environ.get("GENREKIT_CONTAINER_RAY") != "1",
                    reason="the Ray variant is built only with GENREKIT_CONTAINER_RAY=1 (minutes more)")
def test_ray_variant(docker_env, image):
    env = dict(docker_env, GENREKIT_IMAGE=IMAGE, PYTHON=sys.executable)
    run([BUILD, "--ray", "--", "--network", "host", "--force-rm"], env=env, timeout=3600)
    keep_build_cache(env, ray=True)
    script = ("import ray; ray.init(num_cpus=1, include_dashboard=False); "
              "print(ray.data.range(100).map(lambda row: {'x': row['id'] * 2}).sum('x')); ray.shutdown()")
    done = docker(docker_env, "run", "--rm", "--network", "none", "--read-only", "--tmpfs", "/tmp", "--shm-size", "256m",
                  "--entrypoint", "python", f"{IMAGE}:ray", "-c", script, timeout=600)
    assert done.stdout.strip().splitlines()[-1] == "9900"
