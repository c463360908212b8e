"""Issue 13, items 5, 7, 11 and 12 in the service: work per request bounded by the duration limit
and by a minimum upload rate (uploads counted apart from inference), FLAC files of unknown
length, multipart protocol errors, security headers, the Host allow-list and the API key.
"""

import gc
import logging
import socket
import threading
import time

import httpx
import pytest
from conftest import assert_error
from fastapi.testclient import TestClient
from torch import nn

from genrekit.apps.service.app import create_app
from genrekit.inference.model import GenreModel

SR = 22050


@pytest.fixture(scope="module")
def chirp(chirp_wav):
    return chirp_wav


def client_for(app, **options):
    return TestClient(app, raise_server_exceptions=False, base_url="http://localhost", **options)


# ---- item 5: decode work is bounded by the duration limit ------------------------------------


def test_service_refuses_a_long_file_without_duration_after_decoding_just_past_the_limit(
        tiny_model, hour_of_silence, decoded_samples, tmp_path):
    app = create_app(tiny_model, upload_dir=tmp_path, max_duration_s=30)
    with client_for(app) as client:
        start = time.perf_counter()
        for endpoint in ("/v1/predict", "/v1/spectrogram"):
            response = client.post(endpoint, files={"file": ("silence.mka", hour_of_silence.read_bytes())})
            message = assert_error(response, 422, "audio_too_long")
            assert message.startswith("silence.mka: more than 30 s of audio")
        elapsed = time.perf_counter() - start
    # 30 s + the 1 s slack of the limit, per request; the whole hour would be 28.8 M samples
    assert decoded_samples[0] <= 2 * 32 * 8000
    assert elapsed < 10
    assert not list(tmp_path.iterdir())

# ---- item 5: slow uploads ---------------------------------------------------------------------


@pytest.fixture
def live(tiny_model, tmp_path):
    """A real uvicorn server on a free loopback port; yields (app, host, port)."""
    import uvicorn

    servers = []

    def start(**options):
        app = create_app(tiny_model, upload_dir=tmp_path, **options)
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 20
        while not server.started:
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.01)
        servers.append((server, thread))
        return app, server.servers[0].sockets[0].getsockname()[1]

    yield start
    for server, thread in servers:
        server.should_exit = True
        thread.join(10)
    assert not list(tmp_path.iterdir()), "uploads left behind"


class SlowClient(threading.Thread):
    """Sends a multipart upload one byte every ``pause`` seconds over a raw socket."""

    def __init__(self, port: int, pause: float = 0.4):
        super().__init__(daemon=True)
        self.port, self.pause = port, pause
        self.status = None
        self.sent = 0
        self.finished_at = None
        self.started_at = time.monotonic()

    def run(self):
        body = (b'--b\r\nContent-Disposition: form-data; name="file"; filename="slow.wav"\r\n\r\n'
                + b"RIFF" + b"\0" * 100_000 + b"\r\n--b--\r\n")
        head = ("POST /v1/predict HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                "Content-Type: multipart/form-data; boundary=b\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode()
        with socket.create_connection(("127.0.0.1", self.port), timeout=20) as sock:
            sock.sendall(head)
            sock.settimeout(self.pause)
            reply = b""
            for byte in body:
                try:
                    sock.sendall(bytes([byte]))
                    self.sent += 1
                    reply += sock.recv(4096)
                except TimeoutError:
                    continue
                except OSError:
                    break
                if reply:
                    break
            sock.settimeout(5)
            try:
                while b"\r\n" not in reply:
                    more = sock.recv(4096)
                    if not more:
                        break
                    reply += more
            except OSError:
                pass
        self.finished_at = time.monotonic()
        if reply.startswith(b"HTTP/1.1 "):
            self.status = int(reply[9:12])


def test_slow_uploads_are_cut_off_and_do_not_starve_inference(live, chirp):
    app, port = live(workers=1, queue_limit=0, max_uploads=4, min_upload_rate_kbs=2, upload_grace_s=1.5)
    slow = [SlowClient(port) for _ in range(3)]
    for client in slow:
        client.start()
    service = app.state.service
    deadline = time.monotonic() + 5
    while service.uploads.in_flight < 3:
        assert time.monotonic() < deadline, "slow clients never started uploading"
        time.sleep(0.01)
    # three uploads trickle in; the only inference slot is free for a client that sends its file
    response = httpx.post(f"http://127.0.0.1:{port}/v1/predict", files={"file": ("a.wav", chirp)}, timeout=20)
    assert response.status_code == 200, response.text
    assert all(client.status is None for client in slow), "slow clients were cut off too early"
    for client in slow:
        client.join(10)
        assert client.status == 408, client.status
        # the grace period, then about 2 kB/s: cut off long before the whole body arrives
        assert client.finished_at - client.started_at < 5
        assert client.sent < 50
    health = httpx.get(f"http://127.0.0.1:{port}/healthz").json()
    assert health["in_flight"] == 0 and health["uploads_in_flight"] == 0


def test_upload_slots_are_bounded_separately(live, chirp):
    app, port = live(workers=2, queue_limit=2, max_uploads=1, min_upload_rate_kbs=2, upload_grace_s=3)
    slow = SlowClient(port)
    slow.start()
    deadline = time.monotonic() + 5
    while app.state.service.uploads.in_flight < 1:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    refused = httpx.post(f"http://127.0.0.1:{port}/v1/predict", files={"file": ("a.wav", chirp)}, timeout=20)
    assert_error(refused, 429, "busy")
    assert int(refused.headers["retry-after"]) >= 1
    slow.join(10)
    assert slow.status == 408
    ok = httpx.post(f"http://127.0.0.1:{port}/v1/predict", files={"file": ("a.wav", chirp)}, timeout=20)
    assert ok.status_code == 200


def test_limits_report_the_upload_policy(tiny_model, tmp_path):
    with client_for(create_app(tiny_model, upload_dir=tmp_path)) as client:
        limits = client.get("/v1/models").json()["limits"]
    assert limits["max_uploads"] >= 1 and limits["min_upload_rate_kbs"] > 0 and limits["upload_grace_s"] > 0

# ---- item 7: FLAC whose STREAMINFO says 0 total samples ------------------------------------------


def test_flac_of_unknown_length_in_the_service(tiny_model, unknown_length_flac, tmp_path):
    with client_for(create_app(tiny_model, upload_dir=tmp_path, max_duration_s=60)) as client:
        response = client.post("/v1/predict", files={"file": ("stream.flac", unknown_length_flac.read_bytes())})
        assert response.status_code == 200, response.text
        assert response.json()["duration"] == pytest.approx(5.0)
    with client_for(create_app(tiny_model, upload_dir=tmp_path, max_duration_s=3)) as client:
        message = assert_error(client.post("/v1/predict", files={"file": ("stream.flac",
                                                                          unknown_length_flac.read_bytes())}),
                               422, "audio_too_long")
        assert message.startswith("stream.flac: more than 3 s of audio")  # counted no further

# ---- item 11: multipart protocol ------------------------------------------------------------------


def test_overlong_boundary_is_400(tiny_model, tmp_path):
    boundary = "b" * 300
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\n'
            f"RIFF\r\n--{boundary}--\r\n").encode()
    with client_for(create_app(tiny_model, upload_dir=tmp_path)) as client:
        response = client.post("/v1/predict", content=body,
                               headers={"content-type": f"multipart/form-data; boundary={boundary}"})
    assert "boundary" in assert_error(response, 400, "bad_request")


def test_body_without_closing_boundary_is_refused(tiny_model, chirp, tmp_path):
    head = b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\n'
    with client_for(create_app(tiny_model, upload_dir=tmp_path)) as client:
        for body in (head + chirp, head + chirp + b"\r\n--b\r\n"):
            response = client.post("/v1/predict", content=body,
                                   headers={"content-type": "multipart/form-data; boundary=b"})
            assert "closing boundary" in assert_error(response, 400, "bad_request")
        complete = client.post("/v1/predict", content=head + chirp + b"\r\n--b--\r\n",
                               headers={"content-type": "multipart/form-data; boundary=b"})
        assert complete.status_code == 200, complete.text
    assert not list(tmp_path.iterdir())


class LateFailure(nn.Module):
    def __init__(self):
        super().__init__()
        self.release = threading.Event()
        self.done = threading.Event()

    def forward(self, x):
        try:
            assert self.release.wait(10)
            raise RuntimeError("failed after the answer was given up")
        finally:
            self.done.set()


def test_a_job_failing_after_its_504_logs_nothing(tiny_model, chirp, tmp_path, caplog):
    network = LateFailure()
    model = GenreModel(spec=tiny_model.spec, feature=tiny_model.feature, network=network)
    app = create_app(model, upload_dir=tmp_path, workers=1, queue_limit=0, request_timeout_s=0.3)
    pool = app.state.service.pool
    with caplog.at_level(logging.ERROR), client_for(app) as client:
        assert_error(client.post("/v1/predict", files={"file": ("a.wav", chirp)}), 504, "timeout")
        network.release.set()
        assert network.done.wait(10)
        deadline = time.monotonic() + 10
        while pool.in_flight:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        gc.collect()
        time.sleep(0.1)
        gc.collect()
    assert "never retrieved" not in caplog.text
    assert not list(tmp_path.iterdir())


# ---- item 12: security headers, Host allow-list, API key ------------------------------------------


def test_every_response_carries_the_security_headers(tiny_model, tmp_path):
    with client_for(create_app(tiny_model, upload_dir=tmp_path)) as client:
        for url in ("/", "/static/app.js", "/v1/models", "/healthz", "/no/such/page", "/docs", "/openapi.json"):
            response = client.get(url)
            csp = response.headers["content-security-policy"]
            assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp, url
            assert response.headers["x-content-type-options"] == "nosniff"
            assert response.headers["x-frame-options"] == "DENY"
            assert response.headers["referrer-policy"] == "no-referrer"
        refused = client.post("/v1/predict", json={})
        assert refused.status_code == 415 and refused.headers["x-frame-options"] == "DENY"


def test_docs_inline_scripts_are_allowed_by_hash_only(tiny_model, tmp_path):
    import base64
    import hashlib
    import re

    with client_for(create_app(tiny_model, upload_dir=tmp_path)) as client:
        docs = client.get("/docs")
    csp = docs.headers["content-security-policy"]
    assert "unsafe-inline" not in csp.split("script-src", 1)[-1].split(";")[0]
    for script in re.findall(r"<script>(.*?)</script>", docs.text, re.S):
        digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in csp


def test_unknown_host_headers_are_refused(tiny_model, tmp_path):
    app = create_app(tiny_model, upload_dir=tmp_path)
    with TestClient(app, raise_server_exceptions=False, base_url="http://evil.example") as client:
        assert_error(client.get("/v1/models"), 400, "bad_host")
        assert_error(client.get("/"), 400, "bad_host")
        for host in ("localhost:8000", "127.0.0.1:8000", "[::1]:8000", "LOCALHOST", "192.168.1.20"):
            assert client.get("/healthz", headers={"host": host}).status_code == 200, host
        for host in ("evil.example:8000", "localhost.evil.example", "", "127.0.0.1.nip.io"):
            assert_error(client.get("/healthz", headers={"host": host}), 400, "bad_host")
    extra = create_app(tiny_model, upload_dir=tmp_path, allowed_hosts=["genres.example.org"])
    with TestClient(extra, raise_server_exceptions=False, base_url="http://genres.example.org") as client:
        assert client.get("/v1/models").status_code == 200
        assert_error(client.get("/v1/models", headers={"host": "other.example.org"}), 400, "bad_host")


def test_api_key_guards_the_api_but_not_health_or_page(tiny_model, chirp, tmp_path):
    app = create_app(tiny_model, upload_dir=tmp_path, api_key="s3cret-key")
    with client_for(app) as client:
        for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": "s3cret-key"},
                        {"authorization": "Basic s3cret-key"}):
            response = client.get("/v1/models", headers=headers)
            assert_error(response, 401, "unauthorized")
            assert response.headers["www-authenticate"].startswith("Bearer")
        assert_error(client.post("/v1/predict", files={"file": ("a.wav", chirp)}), 401, "unauthorized")
        good = {"authorization": "Bearer s3cret-key"}
        assert client.get("/v1/models", headers=good).status_code == 200
        assert client.post("/v1/predict", files={"file": ("a.wav", chirp)}, headers=good).status_code == 200
        assert client.get("/healthz").json()["status"] == "ok"
        assert client.get("/").status_code == 200 and client.get("/static/app.js").status_code == 200
        spec = client.get("/openapi.json").json()
        assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert not list(tmp_path.iterdir())


def test_serve_takes_hosts_and_the_key_from_its_options_or_the_environment(monkeypatch):
    from typer.testing import CliRunner

    import genrekit.apps.service.app as service_app
    from genrekit.apps.cli.main import app

    calls = []
    monkeypatch.setattr(service_app, "run_server", lambda *args, **kwargs: calls.append(kwargs))
    runner = CliRunner()
    result = runner.invoke(app, ["serve", "--allowed-host", "a.example", "--allowed-host", "b.example",
                                 "--min-upload-rate", "8", "--max-uploads", "5"],
                           env={"GENREKIT_API_KEY": "from-env"})
    assert result.exit_code == 0, result.output
    assert calls[-1]["api_key"] == "from-env"
    assert calls[-1]["allowed_hosts"] == ["a.example", "b.example"]
    assert calls[-1]["min_upload_rate_kbs"] == 8 and calls[-1]["max_uploads"] == 5
    result = runner.invoke(app, ["serve", "--api-key", "given"], env={"GENREKIT_API_KEY": ""})
    assert result.exit_code == 0 and calls[-1]["api_key"] == "given"
    assert "--api-key" in runner.invoke(app, ["serve", "--help"]).output
