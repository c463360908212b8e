"""Torch features against librosa, the numerical reference.

Tolerances (float32 throughout, like librosa on float32 audio):
- mel filterbank: max abs difference <= 1e-6 x the largest weight;
- power mel: max abs difference <= 1e-5 x the peak power;
- log-mel: max abs difference <= 1e-3 dB over every bin (floor bins included);
- MFCC: max abs difference <= 1e-5 x the largest |coefficient|.
"""

import json

import librosa
import numpy as np
import pytest
import scipy.fft
import torch

from genrekit.errors import UsageError
from genrekit.features.registry import build_feature, feature_spec
from genrekit.features.spectral import (
    MFCC,
    LogMel,
    MelSpectrogram,
    dct_matrix,
    mel_filterbank,
)
from genrekit.features.summary import (
    SUMMARY_FEATURE_NAMES,
    summary_features,
    summary_vector,
)

MUSICNN_FRONT_END = dict(sr=16000, n_fft=512, hop_length=256, n_mels=96)
CONFIGS = [
    dict(sr=22050),
    MUSICNN_FRONT_END,
    dict(sr=22050, n_fft=1024, hop_length=256, n_mels=64, fmin=30.0, fmax=8000.0),
]


def chirp_with_noise(sr: int, seconds: float = 2.0, seed: int = 0) -> np.ndarray:
    """A 100 Hz -> ~sr/3 sweep plus white noise: energy in every band, no exact zeros."""
    t = np.arange(int(sr * seconds)) / sr
    sweep_rate = (sr / 3 - 100) / (2 * seconds)
    noise = np.random.default_rng(seed).standard_normal(t.size)
    return (0.5 * np.sin(2 * np.pi * (100 * t + sweep_rate * t**2)) + 0.05 * noise).astype(
        np.float32
    )


def run(module: torch.nn.Module, y: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return module(torch.from_numpy(y)[None])[0].numpy()


def librosa_mel(y: np.ndarray, config: dict) -> np.ndarray:
    return librosa.feature.melspectrogram(y=y, **config)


@pytest.mark.parametrize("config", CONFIGS)
def test_mel_filterbank_matches_librosa(config):
    n_fft = config.get("n_fft", 2048)
    ours = mel_filterbank(
        config["sr"], n_fft, config.get("n_mels", 128), config.get("fmin", 0.0), config.get("fmax")
    )
    reference = librosa.filters.mel(
        sr=config["sr"], n_fft=n_fft, n_mels=config.get("n_mels", 128),
        fmin=config.get("fmin", 0.0), fmax=config.get("fmax"),
    )
    assert ours.dtype == np.float32 and ours.shape == reference.shape
    assert np.abs(ours - reference).max() <= 1e-6 * reference.max()


def test_dct_matrix_is_scipy_orthonormal_dct_ii():
    x = np.random.default_rng(1).standard_normal((40, 7))
    expected = scipy.fft.dct(x, type=2, norm="ortho", axis=0)[:13]
    np.testing.assert_allclose(dct_matrix(13, 40) @ x, expected, atol=1e-5)


@pytest.mark.parametrize("config", CONFIGS)
def test_mel_spectrogram_matches_librosa(config):
    y = chirp_with_noise(config["sr"])
    reference = librosa_mel(y, config)
    ours = run(MelSpectrogram(**config), y)
    assert ours.shape == reference.shape
    assert np.abs(ours - reference).max() <= 1e-5 * reference.max()


@pytest.mark.parametrize("config", CONFIGS)
def test_log_mel_matches_librosa_power_to_db(config):
    y = chirp_with_noise(config["sr"])
    reference = librosa.power_to_db(librosa_mel(y, config), ref=1.0, top_db=80.0)
    ours = run(LogMel(**config), y)
    assert (reference == reference.min()).any(), "signal should reach the top_db floor"
    assert np.abs(ours - reference).max() < 1e-3


@pytest.mark.parametrize("n_mfcc", [20, 13])
def test_mfcc_matches_librosa(n_mfcc):
    y = chirp_with_noise(22050, seed=n_mfcc)
    reference = librosa.feature.mfcc(y=y, sr=22050, n_mfcc=n_mfcc)
    ours = run(MFCC(n_mfcc=n_mfcc), y)
    assert ours.shape == reference.shape == (n_mfcc, 1 + y.size // 512)
    assert np.abs(ours - reference).max() <= 1e-5 * np.abs(reference).max()


def test_mel_magnitude_power_matches_librosa():
    y = chirp_with_noise(22050, seconds=1.0)
    reference = librosa.feature.melspectrogram(y=y, sr=22050, power=1.0)
    ours = run(MelSpectrogram(power=1.0), y)
    assert np.abs(ours - reference).max() <= 1e-5 * reference.max()


def test_reflect_padding_matches_librosa():
    y = chirp_with_noise(22050, seconds=1.0)
    reference = librosa.feature.melspectrogram(y=y, sr=22050, pad_mode="reflect")
    ours = run(MelSpectrogram(pad_mode="reflect"), y)
    assert np.abs(ours - reference).max() <= 1e-5 * reference.max()


def test_empty_mel_bands_match_librosa():
    # More bands than FFT bins at low frequencies: some triangles fall between bins.
    config = dict(sr=8000, n_fft=256, hop_length=128, n_mels=256)
    y = chirp_with_noise(8000, seconds=0.5)
    with pytest.warns(UserWarning, match="Empty filters"):
        reference = librosa_mel(y, config)
    assert (reference == 0).all(axis=1).any()
    ours = run(MelSpectrogram(**config), y)
    assert np.abs(ours - reference).max() <= 1e-5 * reference.max()


def test_batch_equals_items_and_top_db_is_per_item():
    loud = chirp_with_noise(22050, seconds=1.0, seed=1)
    loud[len(loud) // 2 :] = 0.0  # digital silence: below any top_db floor
    quiet = 1e-2 * np.roll(loud, 1000)
    silent = np.zeros_like(loud)
    batch = np.stack([loud, quiet, silent])
    for module in (LogMel(), MFCC()):
        with torch.no_grad():
            together = module(torch.from_numpy(batch)).numpy()
        for item, result in zip(batch, together):
            np.testing.assert_allclose(result, run(module, item), atol=1e-4)
    # The quiet item keeps its own 80 dB range instead of being floored by the loud one.
    quiet_db = run(LogMel(), quiet)
    expected = librosa.power_to_db(librosa.feature.melspectrogram(y=quiet, sr=22050))
    assert np.abs(quiet_db - expected).max() < 1e-3
    assert quiet_db.max() - quiet_db.min() == pytest.approx(80.0, abs=1e-3)


def test_shapes_for_leading_dims_and_frame_count():
    module = LogMel(n_mels=32)
    x = torch.randn(2, 3, 5000)
    out = module(x)
    assert out.shape == (2, 3, 32, module.frames(5000)) == (2, 3, 32, 1 + 5000 // 512)
    assert module(x[0, 0]).shape == (32, module.frames(5000))
    assert MFCC(n_mfcc=13)(x[0]).shape == (3, 13, 10)
    assert out.dtype == torch.float32


def test_constants_are_buffers_left_out_of_state_dict():
    module = MFCC()
    buffers = dict(module.named_buffers())
    assert set(buffers) == {"dct", "logmel.window", "logmel.mel_basis"}
    assert module.state_dict() == {}  # rebuilt from the spec, not stored with model weights
    doubled = module.double()
    assert doubled.logmel.mel_basis.dtype == torch.float64
    assert doubled(torch.randn(1, 4096, dtype=torch.float64)).dtype == torch.float64


@pytest.mark.parametrize(
    "module",
    [
        MelSpectrogram(**MUSICNN_FRONT_END),
        LogMel(n_mels=64, top_db=None, fmax=8000.0),
        MFCC(n_mfcc=13),
    ],
)
def test_spec_round_trip(module):
    spec = feature_spec(module)
    rebuilt = build_feature(json.loads(json.dumps(spec)))
    assert type(rebuilt) is type(module)
    assert feature_spec(rebuilt) == spec
    x = torch.randn(2, 8000)
    torch.testing.assert_close(rebuilt(x), module(x))


def test_build_feature_fills_defaults_and_rejects_bad_specs():
    mfcc = build_feature({"name": "mfcc", "n_mfcc": 20})
    assert feature_spec(mfcc) == {"name": "mfcc", **MFCC().config()}
    logmel = build_feature({"name": "logmel", "sr": 22050, "n_mels": 128})
    assert isinstance(logmel, LogMel) and feature_spec(logmel)["top_db"] == 80.0
    with pytest.raises(UsageError, match="unknown feature 'chroma'"):
        build_feature({"name": "chroma"})
    with pytest.raises(UsageError, match="n_mels_typo"):
        build_feature({"name": "logmel", "n_mels_typo": 64})
    with pytest.raises(UsageError, match="n_mfcc"):
        build_feature({"name": "mfcc", "n_mfcc": 200})
    with pytest.raises(TypeError):
        feature_spec(torch.nn.Linear(2, 2))


def test_summary_feature_names_follow_gtzan_csv_order():
    names = SUMMARY_FEATURE_NAMES
    assert len(names) == len(set(names)) == 57
    assert names[:4] == ["chroma_stft_mean", "chroma_stft_var", "rms_mean", "rms_var"]
    assert names[12:17] == ["harmony_mean", "harmony_var", "perceptr_mean", "perceptr_var", "tempo"]
    assert names[-2:] == ["mfcc20_mean", "mfcc20_var"]


def test_summary_features_equal_plain_librosa_calls():
    sr = 22050
    beats = np.zeros(3 * sr, dtype=np.float32)
    beats[:: sr // 2] = 1.0  # clicks at 120 BPM over the chirp
    y = 0.3 * chirp_with_noise(sr, seconds=3.0) + beats
    summary = summary_features(y, sr)
    assert list(summary) == SUMMARY_FEATURE_NAMES
    harmonic, percussive = librosa.effects.hpss(y)
    mfcc = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=20)
    expected = {
        "chroma_stft_var": np.var(librosa.feature.chroma_stft(y=y, sr=sr)),
        "spectral_centroid_mean": np.mean(librosa.feature.spectral_centroid(y=y, sr=sr)),
        "rolloff_var": np.var(librosa.feature.spectral_rolloff(y=y, sr=sr)),
        "harmony_var": np.var(harmonic),
        "perceptr_mean": np.mean(percussive),
        "tempo": float(np.squeeze(librosa.beat.beat_track(y=y, sr=sr)[0])),
        "mfcc1_mean": np.mean(mfcc[0]),
        "mfcc20_var": np.var(mfcc[19]),
    }
    for name, value in expected.items():
        assert summary[name] == pytest.approx(value, rel=1e-4, abs=1e-9), name
    assert 110 < summary["tempo"] < 130
    vector = summary_vector(y, sr)
    assert vector.shape == (57,)
    assert np.array_equal(vector, [summary[name] for name in SUMMARY_FEATURE_NAMES])


def test_summary_features_of_silence_are_finite():
    summary = summary_features(np.zeros(22050, dtype=np.float32))
    assert all(np.isfinite(value) for value in summary.values())
    assert summary["rms_mean"] == 0.0 and summary["tempo"] == 0.0
    with pytest.raises(ValueError, match="mono"):
        summary_features(np.zeros((2, 100), dtype=np.float32))


@pytest.mark.slow
def test_real_clip_matches_librosa(gtzan_mini):
    path = sorted(gtzan_mini.glob("*/*.flac"))[0]
    y, sr = librosa.load(path, sr=22050)
    reference_db = librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=sr))
    assert np.abs(run(LogMel(), y) - reference_db).max() < 1e-3
    reference_mfcc = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=20)
    assert np.abs(run(MFCC(), y) - reference_mfcc).max() <= 1e-5 * np.abs(reference_mfcc).max()
    y16 = librosa.resample(y, orig_sr=sr, target_sr=16000)
    reference_16k = librosa_mel(y16, MUSICNN_FRONT_END)
    ours_16k = run(MelSpectrogram(**MUSICNN_FRONT_END), y16)
    assert np.abs(ours_16k - reference_16k).max() <= 1e-5 * reference_16k.max()
