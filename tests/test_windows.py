"""The one path from audio to windows (:func:`genrekit.audio.windows.read_windows`): files, arrays
and streams give the same windows; the window budget spreads its windows evenly and decodes only
them, giving exactly the windows a full read gives."""

import numpy as np
import pytest
import soundfile as sf
from audio_formats import encode_with_pyav

from genrekit.audio.windows import budget_indices, read_windows
from genrekit.errors import AudioMissingError, UsageError


@pytest.fixture(scope="module")
def stereo_flac(tmp_path_factory):
    """20.4 s of stereo noise with a slow sweep at 44.1 kHz."""
    path = tmp_path_factory.mktemp("windows") / "long.flac"
    rng = np.random.default_rng(7)
    t = np.arange(int(44100 * 20.4)) / 44100
    tone = 0.3 * np.sin(2 * np.pi * (200 + 40 * t) * t)
    samples = np.stack([tone + rng.normal(0, 0.05, len(t)), tone - rng.normal(0, 0.05, len(t))], axis=1)
    sf.write(path, samples.astype(np.float32), 44100)
    return path


def same_windows(a, b, atol=0.0):
    assert a.samples.shape == b.samples.shape
    np.testing.assert_allclose(a.samples, b.samples, atol=atol, rtol=0)
    np.testing.assert_allclose(a.starts, b.starts, atol=1e-9)
    np.testing.assert_allclose(a.ends, b.ends, atol=1e-9)
    assert (a.padded == b.padded).all()


@pytest.mark.parametrize("options", [{}, {"hop": 1.3, "last": "drop"}, {"offset": 2.25, "duration": 10.0}])
def test_a_file_an_array_and_a_stream_give_the_same_windows(stereo_flac, options):
    from_file = read_windows(stereo_flac, 16000, block_duration=1.7, **options).collect()
    samples, sr = sf.read(stereo_flac, dtype="float32")
    from_array = read_windows(samples, 16000, source_sr=sr, **options).collect()
    blocks = iter([samples[i:i + 30000] for i in range(0, len(samples), 30000)])
    from_stream = read_windows(blocks, 16000, source_sr=sr, **options).collect()
    same_windows(from_array, from_file)
    same_windows(from_stream, from_file)


def test_duration_and_counts(stereo_flac):
    windows = read_windows(stereo_flac, 16000)
    assert windows.duration == pytest.approx(20.4, abs=1e-3) and windows.total == 7 and windows.count == 7
    stream = read_windows(iter([np.zeros(8000, np.float32)] * 4), 16000, source_sr=8000)
    assert stream.duration is None and stream.total is None
    assert len(stream.collect()) == 2 and stream.duration == pytest.approx(4.0)


def test_budget_indices_spread_evenly():
    assert budget_indices(80, 4).tolist() == [10, 30, 50, 70]
    assert budget_indices(5, 0).tolist() == [0, 1, 2, 3, 4]
    assert budget_indices(5, 5).tolist() == [0, 1, 2, 3, 4]
    for total in range(2, 200, 7):
        for budget in (1, 2, 3, 10):
            chosen = budget_indices(total, budget)
            assert len(chosen) == min(total, budget) and len(set(chosen.tolist())) == len(chosen)
            assert chosen.min() >= 0 and chosen.max() < total


def test_bad_options_are_usage_errors(stereo_flac, tmp_path):
    for options in ({"max_windows": -1}, {"max_windows": 1.5}, {"batch_size": 0}, {"offset": -1.0},
                    {"duration": 0.0}):
        with pytest.raises(UsageError):
            read_windows(stereo_flac, 16000, **options)
    with pytest.raises(UsageError, match="sr is required"):
        read_windows(np.zeros(100), 16000)
    with pytest.raises(AudioMissingError):
        read_windows(tmp_path / "missing.flac", 16000)


def _long_file(folder, suffix, seconds=40.0, sr=44100):
    """A long non-periodic signal (so a misplaced window shows) in ``suffix``'s format."""
    rng = np.random.default_rng(11)
    t = np.arange(int(seconds * sr)) / sr
    samples = (0.25 * np.sin(2 * np.pi * (150 + 20 * t) * t) + rng.normal(0, 0.05, len(t))).astype(np.float32)
    path = folder / f"long{suffix}"
    if suffix in (".wav", ".flac", ".ogg"):
        sf.write(path, samples, sr)
    else:
        codec, container = {".mp3": ("libmp3lame", "mp3"), ".m4a": ("aac", "ipod")}[suffix]
        encode_with_pyav(path, samples, sr, codec, container, sample_format="fltp" if codec == "aac" else "flt",
                         bit_rate=192000, frame_size=1152)
    return path


#: How close a window reached by seeking is to the same window read through: exact for
#: libsndfile's formats; MP3 and AAC decoders after a seek settle within FFmpeg's pre-roll.
SEEK_TOLERANCE = {".wav": 1e-5, ".flac": 1e-5, ".ogg": 1e-5, ".mp3": 1e-3, ".m4a": 1e-3}


@pytest.mark.parametrize("suffix", sorted(SEEK_TOLERANCE))
def test_a_budget_decodes_only_its_windows_and_gives_them_exactly(tmp_path, suffix, monkeypatch):
    from genrekit.audio.decode import AudioFile

    path = _long_file(tmp_path, suffix)
    full = read_windows(path, 16000).collect()
    decoded = []
    blocks = AudioFile.blocks

    def counting(self, *args, **kwargs):
        for block in blocks(self, *args, **kwargs):
            decoded.append(len(block))
            yield block

    monkeypatch.setattr(AudioFile, "blocks", counting)
    windows = read_windows(path, 16000, max_windows=4)
    assert windows.total == len(full) == 14 and windows.count == 4 and windows.budgeted
    chosen = windows.collect()
    assert sum(decoded) / 16000 < 4 * 3.2  # each window and its two 50 ms margins, nothing more
    picked = budget_indices(14, 4)
    np.testing.assert_allclose(chosen.starts, full.starts[picked])
    np.testing.assert_allclose(chosen.ends, full.ends[picked])
    np.testing.assert_allclose(chosen.samples, full.samples[picked], atol=SEEK_TOLERANCE[suffix], rtol=0)


def test_a_budget_on_arrays_and_short_files(stereo_flac):
    samples, sr = sf.read(stereo_flac, dtype="float32")
    full = read_windows(samples, 16000, source_sr=sr).collect()
    kept = read_windows(samples, 16000, source_sr=sr, max_windows=3).collect()
    same_windows(kept, type(full)(full.samples[[1, 3, 5]], full.starts[[1, 3, 5]], full.ends[[1, 3, 5]],
                                   full.padded[[1, 3, 5]]))
    assert len(read_windows(stereo_flac, 16000, max_windows=50).collect()) == len(full)  # under budget: all


def test_predict_takes_the_budget_and_a_timeline_keeps_every_window(tmp_path, tiny_model_file):
    from genrekit.inference.model import load_model

    model = load_model(tiny_model_file)
    path = _long_file(tmp_path, ".flac", seconds=60.0)
    budgeted = model.predict(str(path), max_windows=4)
    assert budgeted.duration == pytest.approx(60.0, abs=0.01)
    timeline = model.predict(str(path), max_windows=4, segments=True)
    assert len(timeline.segments) == 20
    every = model.predict(str(path), max_windows=0, top_k=10)
    assert every.top != model.predict(str(path), max_windows=2, top_k=10).top  # the budget changes the inputs
    with pytest.raises(UsageError):
        model.predict(str(path), max_windows=-1)
