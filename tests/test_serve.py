"""The REST service in process (FastAPI's TestClient / httpx's ASGI transport) with a tiny model.

Every test checks that the upload folder is empty afterwards: uploads must be deleted after
successes, rejections, errors and timeouts alike.
"""

import asyncio
import json
import re
import struct
import threading
import time

import httpx
import pytest
import soundfile as sf
import torch
from conftest import assert_error, expected_segment_count
from fastapi.testclient import TestClient
from torch import nn

from genrekit.apps.cli.main import main
from genrekit.apps.service.app import clean_filename, create_app
from genrekit.inference.model import GenreModel

SR = 22050


@pytest.fixture(scope="module")
def wav_bytes(chirp_wav):
    return chirp_wav


@pytest.fixture
def uploads(tmp_path):
    folder = tmp_path / "uploads"
    folder.mkdir()
    yield folder
    assert sorted(p.name for p in folder.iterdir()) == [], "uploads left behind"


@pytest.fixture
def make_client(tiny_model, uploads):
    clients = []

    def make(model=None, **limits):
        app = create_app(model or tiny_model, upload_dir=uploads, allowed_hosts=["testserver"], **limits)
        client = TestClient(app, raise_server_exceptions=False)
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


# ---- predictions -------------------------------------------------------------------------------


def test_predict_matches_the_cli_json(make_client, tiny_model_file, wav_bytes, tmp_path, capsys):
    audio = tmp_path / "song.wav"
    audio.write_bytes(wav_bytes)
    with pytest.raises(SystemExit) as exited:
        main(["predict", "--model", str(tiny_model_file), "--format", "json", "--segments", str(audio)])
    assert exited.value.code == 0
    from_cli = json.loads(capsys.readouterr().out)

    response = make_client().post("/v1/predict?segments=true",
                                  files={"file": ("My Song.wav", wav_bytes, "audio/wav")})
    assert response.status_code == 200, response.text
    from_service = response.json()
    assert from_service["path"] == "My Song.wav"
    assert from_service == {**from_cli, "path": "My Song.wav"}
    assert [s["start"] for s in from_service["segments"]] == [0.0, 3.0, 6.0]


def test_query_options_reach_the_prediction(make_client, wav_bytes):
    client = make_client()
    plain = client.post("/v1/predict?top_k=2", files={"file": ("a.wav", wav_bytes)}).json()
    assert len(plain["top"]) == 2 and "segments" not in plain
    everything = client.post("/v1/predict?top_k=100", files={"file": ("a.wav", wav_bytes)}).json()
    assert len(everything["top"]) == 10
    assert sum(entry["probability"] for entry in everything["top"]) == pytest.approx(1.0, abs=1e-4)
    vote = client.post("/v1/predict?aggregate=vote&segments=true", files={"file": ("a.wav", wav_bytes)}).json()
    majority = max(set(s["genre"] for s in vote["segments"]),
                   key=[s["genre"] for s in vote["segments"]].count)
    assert vote["genre"] == majority


@pytest.mark.slow
def test_predict_gtzan_clip(make_client, gtzan_mini):
    clip = sorted((gtzan_mini / "jazz").glob("*.flac"))[0]
    response = make_client().post("/v1/predict?segments=true", files={"file": (clip.name, clip.read_bytes())})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["path"] == clip.name
    assert body["genre"] in body["segments"][0]["probabilities"]
    duration = sf.info(clip).duration
    assert body["duration"] == pytest.approx(duration, abs=0.01)
    assert len(body["segments"]) == expected_segment_count(clip)


def test_spectrogram_is_a_png_spanning_the_file(make_client, wav_bytes):
    response = make_client().post("/v1/spectrogram", files={"file": ("a.wav", wav_bytes)})
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    png = response.content
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    assert height == 96
    assert width == 1 + int(7.0 * SR) // 512  # one column per frame for a short file


def test_models_and_health(make_client, tiny_model):
    client = make_client(max_upload_mb=3, workers=1, queue_limit=2)
    info = client.get("/v1/models").json()
    model = info["models"][0]
    assert model["name"] == "tiny-test"
    assert model["labels"] == tiny_model.labels
    assert model["sample_rate"] == 22050
    assert model["segment"] == {"window": 3.0, "hop": 3.0, "last": "pad"}
    assert model["feature"] == {"name": "logmel", "n_mels": 64}
    assert model["metrics"] == tiny_model.spec.metrics
    assert info["limits"]["max_upload_mb"] == 3 and info["limits"]["workers"] == 1
    health = client.get("/healthz").json()
    assert health == {"status": "ok", "model": "tiny-test", "in_flight": 0, "capacity": 3,
                      "uploads_in_flight": 0, "max_uploads": 16}


# ---- rejected requests -------------------------------------------------------------------------


def test_not_audio_is_422_naming_the_upload_not_the_temp_path(make_client, uploads):
    response = make_client().post("/v1/predict", files={"file": ("notes.txt", b"just some words\n" * 40)})
    message = assert_error(response, 422, "invalid_audio")
    assert message.startswith("notes.txt: ")
    assert str(uploads) not in message and not re.search(r"[0-9a-f]{32}", message)


def test_empty_and_truncated_audio_are_422(make_client, wav_bytes):
    client = make_client()
    assert_error(client.post("/v1/predict", files={"file": ("empty.wav", b"")}), 422, "invalid_audio")
    message = assert_error(client.post("/v1/predict", files={"file": ("cut.flac", wav_bytes[:300])}),
                           422, "invalid_audio")
    assert message.startswith("cut.flac: ")


def test_upload_over_the_limit_is_413(make_client, wav_bytes):
    client = make_client(max_upload_mb=0.1)  # 7 s of 16-bit WAV is about 300 kB
    message = assert_error(client.post("/v1/predict", files={"file": ("a.wav", wav_bytes)}), 413, "upload_too_large")
    assert "0.1 MB" in message


def test_upload_limit_counts_bytes_not_content_length(make_client, wav_bytes):
    """A chunked body declares no length: the limit must still hold."""
    boundary = "genrekit-test-boundary"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n"
            "Content-Type: audio/wav\r\n\r\n").encode()
    tail = f"\r\n--{boundary}--\r\n".encode()

    def body():
        yield head
        for start in range(0, len(wav_bytes), 8192):
            yield wav_bytes[start:start + 8192]
        yield tail

    client = make_client(max_upload_mb=0.1)
    response = client.post("/v1/predict", content=body(),
                           headers={"content-type": f"multipart/form-data; boundary={boundary}"})
    assert_error(response, 413, "upload_too_large")
    ok = make_client(max_upload_mb=1).post("/v1/predict", content=body(),
                                           headers={"content-type": f"multipart/form-data; boundary={boundary}"})
    assert ok.status_code == 200, ok.text


@pytest.fixture
def live_server(tiny_model, uploads):
    """The app behind a real uvicorn socket on a free loopback port."""
    import uvicorn

    app = create_app(tiny_model, upload_dir=uploads, max_upload_mb=1)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started)
    yield "http://127.0.0.1:%d" % server.servers[0].sockets[0].getsockname()[1]
    server.should_exit = True
    thread.join(10)


def test_big_uploads_get_413_over_a_real_socket(live_server):
    """Clients send the whole body before reading: the 413 must still reach them."""
    big = b"\0" * (5 * 2**20)
    response = httpx.post(f"{live_server}/v1/predict", files={"file": ("big.wav", big)}, timeout=60)
    assert_error(response, 413, "upload_too_large")

    def chunked():
        yield b'--b\r\nContent-Disposition: form-data; name="file"; filename="big.wav"\r\n\r\n'
        for start in range(0, len(big), 2**16):
            yield big[start:start + 2**16]
        yield b"\r\n--b--\r\n"

    response = httpx.post(f"{live_server}/v1/predict", content=chunked(), timeout=60,
                          headers={"content-type": "multipart/form-data; boundary=b"})
    assert_error(response, 413, "upload_too_large")
    assert httpx.get(f"{live_server}/healthz").json()["in_flight"] == 0


def test_audio_over_the_duration_limit_is_422(make_client, wav_bytes):
    response = make_client(max_duration_s=3).post("/v1/predict", files={"file": ("long.wav", wav_bytes)})
    message = assert_error(response, 422, "audio_too_long")
    assert message == "long.wav: 7 s of audio is longer than this service's limit of 3 s"
    spectrogram = make_client(max_duration_s=3).post("/v1/spectrogram", files={"file": ("long.wav", wav_bytes)})
    assert_error(spectrogram, 422, "audio_too_long")


def test_every_error_is_json(make_client):
    client = make_client()
    assert_error(client.get("/no/such/page"), 404, "not_found")
    assert_error(client.get("/static/missing.js"), 404, "not_found")
    assert_error(client.get("/v1/predict"), 405, "method_not_allowed")
    assert "top_k" in assert_error(client.post("/v1/predict?top_k=0"), 422, "invalid_request")
    assert "aggregate" in assert_error(client.post("/v1/predict?aggregate=median"), 422, "invalid_request")
    assert_error(client.post("/v1/predict", json={"file": "x"}), 415, "unsupported_media_type")
    assert_error(client.post("/v1/predict", files={"other": ("a.wav", b"RIFF")}), 422, "missing_file")
    assert_error(client.post("/v1/predict", content=b"--x\r\nbroken",
                             headers={"content-type": "multipart/form-data; boundary=y"}), 400, "bad_request")
    assert_error(client.post("/v1/predict", content=b"abc",
                             headers={"content-type": "multipart/form-data"}), 400, "bad_request")


def test_two_files_in_one_request_are_refused(make_client, wav_bytes):
    files = [("file", ("a.wav", wav_bytes)), ("file", ("b.wav", wav_bytes))]
    assert_error(make_client().post("/v1/predict", files=files), 422, "invalid_request")


class Boom(nn.Module):
    def forward(self, x):
        raise RuntimeError("secret internal detail")


def test_unexpected_failure_is_500_without_details(make_client, tiny_model, wav_bytes):
    broken = GenreModel(spec=tiny_model.spec, feature=tiny_model.feature, network=Boom())
    message = assert_error(make_client(broken).post("/v1/predict", files={"file": ("a.wav", wav_bytes)}),
                           500, "internal_error")
    assert "secret" not in message


def test_filenames_are_cleaned():
    assert clean_filename("../../etc/passwd.wav") == "passwd.wav"
    assert clean_filename("C:\\music\\song.mp3") == "song.mp3"
    assert clean_filename("a\x00b\nc.wav") == "abc.wav"
    assert clean_filename("") == clean_filename(None) == "upload"


# ---- the worker pool: queue limit and timeout --------------------------------------------------


class Gate(nn.Module):
    """A network that waits until the test opens the gate: a stand-in for slow inference."""

    def __init__(self, n_classes):
        super().__init__()
        self.n_classes = n_classes
        self.open = threading.Event()
        self.entered = threading.Event()

    def forward(self, x):
        self.entered.set()
        assert self.open.wait(10), "gate never opened"
        return torch.zeros(x.shape[0], self.n_classes)


@pytest.fixture
def gated(tiny_model):
    gate = Gate(len(tiny_model.labels))
    yield GenreModel(spec=tiny_model.spec, feature=tiny_model.feature, network=gate), gate
    gate.open.set()


def wait_for(condition, timeout=10.0):
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, "condition not reached"
        time.sleep(0.01)


def test_full_queue_answers_429_with_retry_after(gated, uploads, wav_bytes):
    model, gate = gated
    app = create_app(model, upload_dir=uploads, workers=1, queue_limit=1, allowed_hosts=["test"])
    pool = app.state.service.pool

    async def scenario():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            def post():
                return client.post("/v1/predict", files={"file": ("a.wav", wav_bytes)})
            running = asyncio.create_task(post())
            await asyncio.to_thread(gate.entered.wait, 10)
            waiting = asyncio.create_task(post())
            while pool.in_flight < 2:
                await asyncio.sleep(0.01)
            refused = await post()
            gate.open.set()
            return refused, await running, await waiting

    refused, first, second = asyncio.run(scenario())
    assert_error(refused, 429, "busy")
    assert int(refused.headers["retry-after"]) >= 1
    assert first.status_code == second.status_code == 200
    assert pool.in_flight == 0
    app.state.service.shutdown()


def test_timeout_is_504_and_the_job_keeps_its_slot_until_it_ends(gated, uploads, wav_bytes):
    model, gate = gated
    app = create_app(model, upload_dir=uploads, workers=1, queue_limit=0, request_timeout_s=0.3,
                     allowed_hosts=["testserver"])
    pool = app.state.service.pool
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.post("/v1/predict", files={"file": ("slow.wav", wav_bytes)})
        assert_error(response, 504, "timeout")
        # the inference thread is still running: its slot and upload stay taken
        assert pool.in_flight == 1 and len(list(uploads.iterdir())) == 1
        assert_error(client.post("/v1/predict", files={"file": ("b.wav", wav_bytes)}), 429, "busy")
        gate.open.set()
        wait_for(lambda: pool.in_flight == 0)
        wait_for(lambda: not list(uploads.iterdir()))


# ---- pages and docs ----------------------------------------------------------------------------


def test_web_page_and_docs_load_nothing_from_elsewhere(make_client):
    client = make_client()
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'src="/static/app.js"' in page.text and 'href="/static/style.css"' in page.text
    docs = client.get("/docs")
    assert docs.status_code == 200 and "SwaggerUIBundle" in docs.text
    referenced = re.findall(r'(?:src|href)="([^"]+)"', page.text + docs.text)
    assert referenced and all(url.startswith(("/", "data:")) for url in referenced), referenced
    for url in referenced:
        if url.startswith("/") and not url.startswith("/docs"):
            assert client.get(url).status_code == 200, url
    for asset in ("/docs/assets/swagger-ui-bundle.js", "/docs/assets/swagger-ui.css"):
        assert client.get(asset).status_code == 200
    for static in ("/static/app.js", "/static/style.css", "/"):
        assert not re.search(r"https?://", client.get(static).text), static
    assert_error(client.get("/docs/assets/swagger-editor.js"), 404, "not_found")


def test_openapi_describes_the_api(make_client):
    spec = make_client().get("/openapi.json").json()
    assert {"/v1/predict", "/v1/spectrogram", "/v1/models", "/healthz"} <= set(spec["paths"])
    predict = spec["paths"]["/v1/predict"]["post"]
    assert "multipart/form-data" in predict["requestBody"]["content"]
    assert {p["name"] for p in predict["parameters"]} == {"top_k", "segments", "aggregate", "styles", "max_windows"}
    assert {"413", "422", "429", "504"} <= set(predict["responses"])


def test_serve_command_lists_its_options():
    from typer.testing import CliRunner

    from genrekit.apps.cli.main import app

    result = CliRunner().invoke(app, ["serve", "--help"])
    assert result.exit_code == 0
    for option in ("--model", "--host", "--port", "--max-upload-mb", "--max-duration", "--workers"):
        assert option in result.output


def test_docs_without_swagger_ui_fall_back_to_a_plain_page(make_client, monkeypatch):
    import genrekit.apps.service.app

    monkeypatch.setattr(genrekit.apps.service.app, "_swagger_dir", lambda: None)
    client = make_client()
    docs = client.get("/docs")
    assert docs.status_code == 200 and "/openapi.json" in docs.text and "SwaggerUIBundle" not in docs.text
    assert not re.search(r"(?:src|href)=\"https?://", docs.text)
    assert_error(client.get("/docs/assets/swagger-ui.css"), 404, "not_found")
