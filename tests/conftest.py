from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
GTZAN_MINI = SHARED / "data" / "gtzan-mini"
MUSICNN_FIXTURES = SHARED / "fixtures" / "musicnn"


@pytest.fixture(scope="session")
def gtzan_mini() -> Path:
    if not GTZAN_MINI.is_dir():
        pytest.skip("../shared/data/gtzan-mini is not beside this checkout")
    return GTZAN_MINI


def pytest_configure(config):
    """Before xdist starts its workers: compile librosa's numba kernels once, in this process.

    librosa caches them on disk (``cache=True``); two workers compiling and writing the same
    kernel at once on a fresh environment have left a cache that segfaults every later load
    (seen on Python 3.13, numba 0.68). Compiled here first, the workers only read the cache."""
    if hasattr(config, "workerinput") or not config.getoption("numprocesses", None):
        return
    import numpy as np

    from genrekit.features.summary import summary_features

    import librosa

    sr = 22050
    for dtype in (np.float32, np.float64):
        y = (0.1 * np.random.default_rng(0).standard_normal(3 * sr)).astype(dtype)
        y[:: sr // 2] = 1.0
        summary_features(y, sr)
        librosa.feature.chroma_stft(y=y, sr=sr)
        librosa.beat.beat_track(y=y, sr=sr)


GTZAN_GENRES = ["blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock"]


@pytest.fixture(scope="session")
def tiny_model_file(tmp_path_factory) -> Path:
    """A genuine but untrained GTZAN-labelled model (log-mel + 2-block CNN): fast, not accurate."""
    import torch

    from genrekit.models.files import save_model
    from genrekit.models.registry import build_model

    torch.manual_seed(0)
    network = build_model({"name": "cnn2d", "input_shape": [64, 130], "channels": [4, 8],
                           "hidden": 0, "dropout": 0.0}, n_classes=len(GTZAN_GENRES))
    spec = {"name": "tiny-test", "labels": GTZAN_GENRES, "sample_rate": 22050,
            "segment": {"window": 3.0, "hop": 3.0, "last": "pad"},
            "feature": {"name": "logmel", "n_mels": 64}, "architecture": network.spec,
            "metrics": {"note": "random weights, for tests"}}
    tensors = {f"network.{name}": t for name, t in network.state_dict().items()}
    return save_model(tmp_path_factory.mktemp("tiny-model") / "tiny", spec, tensors)


def expected_segment_count(path, window: float = 3.0) -> int:
    """How many windows genrekit cuts ``path`` into (the segmenter's own rule, from the header)."""
    import numpy as np
    import soundfile as sf

    from genrekit.audio.segments import segment_samples

    info = sf.info(str(path))
    return len(segment_samples(np.zeros(info.frames, np.float32), info.samplerate, window=window))


@pytest.fixture
def quiet_single_thread():
    """Training tests: one torch thread (tiny models gain nothing from two) and no progress output."""
    import torch

    from genrekit.apps.console import set_verbosity

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    set_verbosity(quiet=True)
    yield
    set_verbosity(quiet=False)
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def hour_of_silence(tmp_path_factory):
    """An hour of FLAC silence in Matroska, without a duration in the header (2.5 MB)."""
    from headerless_audio import matroska_silence_without_duration

    return matroska_silence_without_duration(tmp_path_factory.mktemp("mkv") / "silence.mka", 3600)


@pytest.fixture(scope="session")
def unknown_length_flac(tmp_path_factory):
    """Five seconds of a tone plus noise at 22050 Hz as FLAC with 0 total samples in STREAMINFO;
    ``known-length.flac`` beside it holds the same samples with the length stated."""
    import numpy as np
    from headerless_audio import flac_of_unknown_length

    rng = np.random.default_rng(2)
    t = np.arange(5 * 22050) / 22050
    samples = (0.3 * np.sin(2 * np.pi * 330 * t) + 0.05 * rng.standard_normal(t.size)).astype(np.float32)
    return flac_of_unknown_length(tmp_path_factory.mktemp("flac") / "stream.flac", samples, 22050)


@pytest.fixture
def decoded_samples(monkeypatch):
    """Counts the samples FFmpeg decodes (in every thread of this process)."""
    from genrekit.audio import decode

    counted = [0]
    original = decode._frame_to_float

    def counting(path, frame, channels):
        block = original(path, frame, channels)
        counted[0] += len(block)
        return block

    monkeypatch.setattr(decode, "_frame_to_float", counting)
    return counted


@pytest.fixture(scope="module")
def tiny_model(tiny_model_file):
    """The tiny model, loaded."""
    from genrekit.inference.model import load_model

    return load_model(tiny_model_file)


@pytest.fixture(scope="module")
def chirp_wav(tmp_path_factory) -> bytes:
    """Seven seconds of a chirp plus noise at 22050 Hz, as WAV file bytes (three 3-s segments, last padded)."""
    import numpy as np
    import soundfile as sf

    rng = np.random.default_rng(1)
    sr = 22050
    t = np.arange(int(7.0 * sr)) / sr
    samples = 0.3 * np.sin(2 * np.pi * (200 + 150 * t) * t) + 0.05 * rng.standard_normal(t.size)
    path = tmp_path_factory.mktemp("audio") / "chirp.wav"
    sf.write(path, samples.astype(np.float32), sr)
    return path.read_bytes()


def assert_error(response, status, code):
    """A service error response: the status, JSON ``{"error": {"code", "message"}}`` only, no
    traceback; returns the message."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert "Traceback" not in response.text
    return body["error"]["message"]
