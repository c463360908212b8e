"""The web page in a real browser: Playwright driving Debian's headless Chromium.

The server is the real ``genrekit serve`` command in a subprocess on a free loopback port.
Chromium must be installed (``apt-get install chromium``; ``./run test`` does it through
``.ci/browser-setup``): without it these tests FAIL, so that CI cannot pass without running them.
Set ``GENREKIT_SKIP_BROWSER=1`` to skip them on purpose. Screenshots go to ``test-artifacts/``.
"""

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import httpx
import pytest
import soundfile as sf
from conftest import expected_segment_count

pytestmark = [pytest.mark.browser, pytest.mark.slow]

if os.environ.get("GENREKIT_SKIP_BROWSER") == "1":
    pytest.skip("GENREKIT_SKIP_BROWSER=1: browser tests skipped on request", allow_module_level=True)

CHROMIUM = os.environ.get("GENREKIT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(model_args, tmp_path, **env_vars):
    """``genrekit serve`` in a subprocess; its uploads go under ``tmp_path`` (TMPDIR)."""
    port = free_port()
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    env.pop("GENREKIT_API_KEY", None)  # a key in the tester's environment would lock the page
    env.update(env_vars)
    process = subprocess.Popen(
        [sys.executable, "-m", "genrekit", "serve", *model_args, "--port", str(port)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"genrekit serve exited with {process.returncode}:\n{process.stdout.read()}")
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return process, base
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise AssertionError("genrekit serve did not answer /healthz within 120 s")


def stop_server(process) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"{CHROMIUM} not found: install Debian's chromium (apt-get install chromium) "
                    "or set GENREKIT_SKIP_BROWSER=1 to skip the browser tests")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def server(tiny_model_file, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("server-tmp")
    process, base = start_server(["--model", str(tiny_model_file)], tmp)
    yield base, tmp
    stop_server(process)
    assert not list(tmp.glob("genrekit-uploads-*")), "upload folder not removed at shutdown"


def new_page(browser, base, **context_options):
    """A page that may talk to ``base`` only; any other request is recorded and refused."""
    context = browser.new_context(**context_options)
    page = context.new_page()
    outside = []

    def guard(route):
        url = route.request.url
        if urlparse(url).netloc == urlparse(base).netloc or url.startswith(("blob:", "data:")):
            route.continue_()
        else:
            outside.append(url)
            route.abort()

    page.route("**/*", guard)
    page.outside_requests = outside
    # listen from the start: Playwright turns on file chooser interception asynchronously, so a
    # listener added just before the key press can miss the dialog
    page.file_choosers = []
    page.on("filechooser", lambda chooser: page.file_choosers.append(chooser))
    return page


def wait_for_file_chooser(page, seen: int):
    """The file chooser opened after the first ``seen`` ones (waits up to 10 s)."""
    for _ in range(200):
        if len(page.file_choosers) > seen:
            return page.file_choosers[seen]
        page.wait_for_timeout(50)
    raise AssertionError("no file chooser opened")


def wait_until(page, expression: str, timeout: float = 30_000) -> None:
    """Poll a JavaScript expression until it is true. (``page.wait_for_function`` evaluates its
    string with ``eval`` inside the page, which the page's Content-Security-Policy forbids.)"""
    deadline = time.monotonic() + timeout / 1000
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise AssertionError(f"still false after {timeout / 1000:g} s: {expression}")
        page.wait_for_timeout(50)


def upload_dir_is_empty(tmp: Path) -> bool:
    return all(not any(folder.iterdir()) for folder in tmp.glob("genrekit-uploads-*"))


def test_upload_see_genre_timeline_and_seek(browser, server, gtzan_mini):
    base, tmp = server
    clip = sorted((gtzan_mini / "rock").glob("*.flac"))[0]
    page = new_page(browser, base, viewport={"width": 1200, "height": 1000})
    page.goto(base + "/")
    page.get_by_text("model: tiny-test").wait_for()

    page.set_input_files("#file-input", str(clip))
    page.locator("#result").wait_for(state="visible", timeout=60_000)
    labels = page.evaluate("page.labels")
    assert page.locator("#file-name").inner_text() == clip.name
    assert page.locator("#genre").text_content() in labels
    assert page.locator("#bars li").count() == 5
    first_bar = page.locator("#bars li").first
    assert first_bar.locator(".bar-label").text_content() == page.locator("#genre").text_content()
    assert first_bar.locator(".bar-value").text_content().endswith("%")

    segments = page.locator("#timeline button.segment")
    assert segments.count() == expected_segment_count(clip)
    legend = page.locator("#legend li").all_text_contents()
    assert legend and set(legend) <= set(labels)
    wait_until(page, "document.getElementById('spectrogram').naturalWidth > 0", timeout=60_000)

    player = "document.getElementById('player')"
    wait_until(page, f"{player}.readyState >= 1")
    assert page.evaluate(f"{player}.currentTime") == 0
    segments.nth(4).click()
    wait_until(page, f"Math.abs({player}.currentTime - 12) < 1.0")
    wait_until(page, "document.querySelector('#timeline .current') !== null")
    assert float(page.evaluate("parseFloat(document.getElementById('playhead').style.left)")) > 30

    # keyboard: a focused segment plays from its start on Enter
    page.evaluate(f"{player}.pause()")
    segments.nth(8).focus()
    page.keyboard.press("Enter")
    wait_until(page, f"Math.abs({player}.currentTime - 24) < 1.0")

    ARTIFACTS.mkdir(exist_ok=True)
    page.evaluate(f"{player}.pause()")
    page.screenshot(path=str(ARTIFACTS / "web-page.png"), full_page=True)
    assert page.outside_requests == []
    assert upload_dir_is_empty(tmp)
    page.context.close()


def test_rejected_file_shows_an_error_and_keyboard_opens_the_picker(browser, server, tmp_path):
    base, tmp = server
    text_file = tmp_path / "notes.txt"
    text_file.write_text("this is a shopping list, not a song\n" * 20)
    page = new_page(browser, base)
    page.goto(base + "/")
    page.get_by_text("model: tiny-test").wait_for()

    page.locator("#drop-zone").focus()
    page.keyboard.press("Enter")
    wait_for_file_chooser(page, 0).set_files(str(text_file))
    error = page.locator("#error")
    error.wait_for(state="visible", timeout=30_000)
    assert error.inner_text().startswith("notes.txt: not an audio file")
    assert page.locator("#result").is_hidden()

    page.locator("#drop-zone").focus()
    page.keyboard.press(" ")
    wait_for_file_chooser(page, 1)
    assert page.outside_requests == []
    assert upload_dir_is_empty(tmp)
    page.context.close()


def test_drag_and_drop(browser, server, tmp_path):
    base, _ = server
    import base64

    import numpy as np

    t = np.arange(7 * 22050) / 22050
    sf.write(tmp_path / "chirp.wav", (0.3 * np.sin(2 * np.pi * (200 + 150 * t) * t)).astype(np.float32), 22050)
    encoded = base64.b64encode((tmp_path / "chirp.wav").read_bytes()).decode()
    page = new_page(browser, base)
    page.goto(base + "/")
    page.get_by_text("model: tiny-test").wait_for()
    dropped = page.evaluate_handle("""(encoded) => {
        const bytes = Uint8Array.from(atob(encoded), (c) => c.charCodeAt(0));
        const transfer = new DataTransfer();
        transfer.items.add(new File([bytes], "dropped chirp.wav", { type: "audio/wav" }));
        return transfer;
    }""", encoded)
    page.dispatch_event("#drop-zone", "dragover", {"dataTransfer": dropped})
    assert "dragging" in page.locator("#drop-zone").get_attribute("class")
    page.dispatch_event("#drop-zone", "drop", {"dataTransfer": dropped})
    page.locator("#result").wait_for(state="visible", timeout=60_000)
    assert page.locator("#file-name").text_content() == "dropped chirp.wav"
    assert page.locator("#timeline button.segment").count() == 3
    assert "dragging" not in page.locator("#drop-zone").get_attribute("class")
    page.context.close()


def test_phone_width_layout(browser, server, gtzan_mini):
    base, _ = server
    clip = sorted((gtzan_mini / "jazz").glob("*.flac"))[0]
    page = new_page(browser, base, viewport={"width": 390, "height": 844}, device_scale_factor=2,
                    is_mobile=True, has_touch=True)
    page.goto(base + "/")
    page.set_input_files("#file-input", str(clip))
    page.locator("#result").wait_for(state="visible", timeout=60_000)
    wait_until(page, "document.getElementById('spectrogram').naturalWidth > 0", timeout=60_000)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    timeline = page.locator("#timeline").bounding_box()
    assert timeline["width"] > 300 and timeline["x"] >= 0
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "web-page-phone.png"), full_page=True)
    page.context.close()


def test_api_docs_render_offline(browser, server):
    base, _ = server
    page = new_page(browser, base)
    page.goto(base + "/docs")
    page.locator(".swagger-ui .opblock-summary-path", has_text="/v1/predict").first.wait_for(timeout=30_000)
    assert page.outside_requests == []
    page.context.close()


def test_default_model_in_the_browser(browser, gtzan_mini, tmp_path):
    from genrekit.models.files import default_model_path

    if not default_model_path().is_file():
        pytest.skip("no bundled default model yet (src/genrekit/data/models/default.json)")
    process, base = start_server([], tmp_path)
    try:
        clip = sorted((gtzan_mini / "classical").glob("*.flac"))[0]
        page = new_page(browser, base, viewport={"width": 1200, "height": 1000})
        page.goto(base + "/")
        page.set_input_files("#file-input", str(clip))
        page.locator("#result").wait_for(state="visible", timeout=120_000)
        assert page.locator("#genre").text_content() in page.evaluate("page.labels")
        assert page.locator("#timeline button.segment").count() >= 1
        wait_until(page, "document.getElementById('spectrogram').naturalWidth > 0", timeout=60_000)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "web-page-default-model.png"), full_page=True)

        # music, then hiss: the timeline shows both; hiss alone: "not music", no genre
        import numpy as np
        import soundfile as sf

        from genrekit.audio.decode import load_audio

        music = load_audio(clip, 16000).samples[: 9 * 16000]
        hiss = np.random.default_rng(0).normal(0, 0.05, 12 * 16000).astype(np.float32)
        sf.write(tmp_path / "intro-then-hiss.wav", np.concatenate([music, hiss]), 16000)
        sf.write(tmp_path / "hiss.wav", hiss, 16000)
        page.set_input_files("#file-input", str(tmp_path / "intro-then-hiss.wav"))
        wait_until(page, "document.getElementById('file-name').textContent === 'intro-then-hiss.wav'",
                   timeout=120_000)
        assert page.locator("#genre").text_content() in page.evaluate("page.labels")
        titles = page.locator("#timeline button.segment").evaluate_all("buttons => buttons.map(b => b.title)")
        assert any("not music" in t for t in titles) and not all("not music" in t for t in titles), titles
        assert "not music" in page.locator("#legend").text_content()
        page.set_input_files("#file-input", str(tmp_path / "hiss.wav"))
        wait_until(page, "document.getElementById('file-name').textContent === 'hiss.wav'", timeout=120_000)
        assert page.locator("#genre").text_content() == "not music"
        assert page.locator("#not-music").is_visible()
        page.screenshot(path=str(ARTIFACTS / "web-page-not-music.png"), full_page=True)
        assert page.outside_requests == []
        page.context.close()
    finally:
        stop_server(process)
    shutil.rmtree(tmp_path, ignore_errors=True)


def test_page_asks_for_the_api_key_and_sends_it(browser, tiny_model_file, tmp_path):
    """A server started with GENREKIT_API_KEY: the page asks for the key, then works as usual,
    and the Content-Security-Policy blocks nothing it needs (blob: audio and spectrogram)."""
    import numpy as np

    process, base = start_server(["--model", str(tiny_model_file)], tmp_path, GENREKIT_API_KEY="open sesame")
    try:
        assert httpx.get(f"{base}/v1/models").status_code == 401
        t = np.arange(7 * 22050) / 22050
        sf.write(tmp_path / "chirp.wav", (0.3 * np.sin(2 * np.pi * (200 + 150 * t) * t)).astype(np.float32), 22050)
        page = new_page(browser, base)
        blocked = []
        page.on("console", lambda message: blocked.append(message.text)
                if "Content Security Policy" in message.text else None)
        page.goto(base + "/")
        page.locator("#key-form").wait_for(state="visible", timeout=30_000)
        assert "API key" in page.locator("#error").inner_text()
        page.fill("#api-key", "wrong")
        page.keyboard.press("Enter")
        page.locator("#key-form").wait_for(state="visible", timeout=30_000)
        wait_until(page, "document.getElementById('api-key').value === ''")
        page.fill("#api-key", "open sesame")
        page.get_by_role("button", name="Use key").click()
        page.get_by_text("model: tiny-test").wait_for(timeout=30_000)
        assert page.locator("#key-form").is_hidden() and page.locator("#error").is_hidden()

        page.set_input_files("#file-input", str(tmp_path / "chirp.wav"))
        page.locator("#result").wait_for(state="visible", timeout=60_000)
        assert page.locator("#timeline button.segment").count() == 3
        wait_until(page, "document.getElementById('spectrogram').naturalWidth > 0", timeout=60_000)
        wait_until(page, "document.getElementById('player').readyState >= 1", timeout=30_000)
        page.reload()  # the key lasts for the tab's session
        page.get_by_text("model: tiny-test").wait_for(timeout=30_000)
        assert page.locator("#key-form").is_hidden()
        assert blocked == [] and page.outside_requests == []
        page.context.close()
    finally:
        stop_server(process)
