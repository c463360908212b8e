import json

import numpy as np
import pytest
import torch
from tones import (
    GENRES,
    SR,
    TINY_CNN,
    TINY_FEATURE,
    TINY_SEGMENT,
    make_tone_dataset,
    tone_track,
)

from genrekit.data.splits import data_fingerprint
from genrekit.errors import UsageError
from genrekit.inference.model import load_model
from genrekit.training.augment import SpecAugment, WaveAugment
from genrekit.training.calibration import fit_temperature
from genrekit.training.checkpoints import checkpoint_paths
from genrekit.training.config import TrainConfig, load_config
from genrekit.training.loop import train_model

pytestmark = pytest.mark.usefixtures("quiet_single_thread")


@pytest.fixture(scope="module")
def tones(tmp_path_factory):
    return make_tone_dataset(tmp_path_factory.mktemp("tones"))


def tiny_config(dataset, out, **changes) -> TrainConfig:
    values = dict(
        dataset=str(dataset),
        out=str(out),
        sample_rate=SR,
        segment=TINY_SEGMENT,
        feature=TINY_FEATURE,
        architecture=TINY_CNN,
        split={"method": "random", "valid_size": 0.2, "test_size": 0.2},
        epochs=6,
        batch_size=8,
        learning_rate=0.01,
        patience=0,
        cache_dir="",
        device="cpu",  # exact reproducibility is promised on CPU only
    )
    values.update(changes)
    return TrainConfig.from_dict(values)


@pytest.fixture(scope="module")
def trained(tones, tmp_path_factory):
    """One tiny training run shared by the tests that only inspect its outputs."""
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("model") / "tones-cnn"
    cache = tmp_path_factory.mktemp("cache")
    return train_model(tiny_config(tones, out, cache_dir=str(cache)))


def test_trained_model_round_trips_and_predicts(trained, tones, tmp_path):
    model = load_model(trained.model_path)
    assert model.labels == sorted(GENRES)
    assert model.sample_rate == SR
    # fresh tracks the model has never seen, one per genre
    rng = np.random.default_rng(123)
    right = 0
    for genre, base in GENRES.items():
        audio = tone_track(base, 2.0, rng)
        right += model.predict(audio, sr=SR).genre == genre
    assert right >= 2  # chance is 1 of 3
    # the loaded network gives the logits the training run's network gave
    segments = torch.from_numpy(tone_track(700.0, 0.5, rng))[None]
    trained.network.eval()
    with torch.no_grad():
        expected = trained.network(model.feature(segments))
    torch.testing.assert_close(model.segment_logits(segments), expected)


def test_model_file_records_the_run(trained, tones):
    spec = json.loads(trained.model_path.read_text())
    assert spec["format"] == "genrekit-model"
    assert spec["architecture"]["name"] == "cnn2d"
    assert spec["architecture"]["input_shape"][0] == TINY_FEATURE["n_mfcc"]
    assert spec["feature"] == {**spec["feature"], **TINY_FEATURE}  # with every default written out
    assert {"fmin", "top_db", "center"} <= set(spec["feature"])
    assert spec["segment"] == {"window": 0.5, "hop": 0.5, "last": "pad"}
    split = spec["split"]
    assert sum(split["counts"].values()) == 18
    assert split["counts"]["test"] >= 3 and split["counts"]["valid"] >= 3  # stratified: 1+ per genre
    assert len(split["test"]) == split["counts"]["test"]
    assert not set(split["train"]) & set(split["test"])
    assert spec["data_fingerprint"].startswith("sha256:")
    history = spec["training"]["history"]
    assert [row["epoch"] for row in history] == list(range(1, 7))
    assert {"train_loss", "valid_loss", "valid_accuracy", "valid_track_accuracy"} <= set(history[0])
    assert spec["training"]["best_epoch"] == min(history, key=lambda r: r["valid_loss"])["epoch"]
    assert spec["calibration"]["method"] == "temperature-scaling"
    assert spec["calibration"]["nll_after"] <= spec["calibration"]["nll_before"] + 1e-9
    test = spec["metrics"]["test"]
    assert test["n_tracks"] == split["counts"]["test"]
    assert test["n_segments"] == 4 * test["n_tracks"]  # 2-s tracks, 0.5-s windows
    assert test["track_accuracy"] > 1 / 3
    assert trained.timings["total"] >= trained.timings["training"] > 0


def test_training_is_reproducible(tones, tmp_path):
    first = train_model(tiny_config(tones, tmp_path / "a", epochs=2))
    second = train_model(tiny_config(tones, tmp_path / "b", epochs=2))
    for (name, a), b in zip(first.network.state_dict().items(), second.network.state_dict().values()):
        assert torch.equal(a, b), name
    assert first.history[-1]["train_loss"] == second.history[-1]["train_loss"]


def test_resume_continues_where_the_checkpoint_stopped(tones, tmp_path):
    straight = train_model(tiny_config(tones, tmp_path / "straight", epochs=4))
    train_model(tiny_config(tones, tmp_path / "halves", epochs=2))
    checkpoint = json.loads(checkpoint_paths(tmp_path / "halves")[0].read_text())
    assert checkpoint["epoch"] == 2
    resumed = train_model(tiny_config(tones, tmp_path / "halves", epochs=4), resume=tmp_path / "halves.ckpt.json")
    assert [row["epoch"] for row in resumed.history] == [1, 2, 3, 4]
    assert resumed.history[2]["train_loss"] == straight.history[2]["train_loss"]
    for (name, a), b in zip(straight.network.state_dict().items(), resumed.network.state_dict().values()):
        assert torch.equal(a, b), name


def test_resume_refuses_another_recipe(tones, tmp_path):
    train_model(tiny_config(tones, tmp_path / "m", epochs=1))
    with pytest.raises(UsageError, match="learning_rate"):
        train_model(tiny_config(tones, tmp_path / "m", epochs=2, learning_rate=0.1), resume=tmp_path / "m.ckpt")


def test_early_stopping_stops(tones, tmp_path):
    # a learning rate this small cannot lower the validation loss for long
    result = train_model(tiny_config(tones, tmp_path / "m", epochs=30, patience=1, learning_rate=1e-6,
                                     checkpoint=False))
    assert len(result.history) < 30
    assert result.spec.training["stopped_early"]
    assert not checkpoint_paths(tmp_path / "m")[0].exists()


def test_augmented_multi_input_run(tones, tmp_path):
    """Waveform and SpecAugment augmentation, class weights and a two-input network together."""
    logmel = {"name": "logmel", "sr": SR, "n_fft": 256, "hop_length": 128, "n_mels": 16}
    config = tiny_config(
        tones, tmp_path / "m",
        feature=[TINY_FEATURE, logmel],
        architecture={"name": "parallel", "branches": [TINY_CNN, {"name": "cnn1d", "channels": [8]}], "hidden": 16},
        augment={"gain_db": 6, "noise_snr_db": 20, "shift": 0.2, "freq_masks": 1, "freq_width": 3,
                 "time_masks": 1, "time_width": 4},
        class_weights=True, epochs=5,
    )
    result = train_model(config)
    # balanced loss: weight x number of training tracks is the same for every genre
    counts = [sum(i.startswith(genre) for i in result.spec.split["train"]) for genre in sorted(GENRES)]
    weighted = np.array(result.spec.training["class_weights"]) * counts
    assert weighted == pytest.approx(np.full(3, weighted[0]))
    assert result.metrics["test"]["track_accuracy"] > 1 / 3
    model = load_model(result.model_path)
    probabilities = model.segment_probabilities(torch.from_numpy(tone_track(2000.0, 0.5, np.random.default_rng(5)))[None])
    assert probabilities.shape == (1, 3)


def test_second_run_reads_features_from_the_cache(tones, tmp_path, monkeypatch):
    config = tiny_config(tones, tmp_path / "m", epochs=1, cache_dir=str(tmp_path / "cache"))
    train_model(config)

    def no_decoding(*args, **kwargs):
        raise AssertionError("audio decoded although the features are cached")

    monkeypatch.setattr("genrekit.audio.decode.load_audio", no_decoding)
    train_model(config)


def test_kfold_split_record(tones, tmp_path):
    result = train_model(tiny_config(tones, tmp_path / "m", epochs=1,
                                     split={"method": "kfold", "folds": 3, "fold": 1, "valid_size": 0.2}))
    split = result.spec.split
    assert split["method"] == "kfold" and split["fold"] == 1
    assert split["counts"]["test"] == 6
    assert sum(split["counts"].values()) == 18
    assert len(set(split["train"]) | set(split["valid"]) | set(split["test"])) == 18


def test_config_from_toml(tones, tmp_path):
    path = tmp_path / "run.toml"
    path.write_text(
        f'dataset = "{tones}"\nout = "models/tones"\nepochs = 3\nsample_rate = {SR}\n'
        '[feature]\nname = "mfcc"\nn_mfcc = 13\n[architecture]\nname = "cnn2d"\n'
    )
    config = load_config(path, epochs=5, patience=None)
    assert config.epochs == 5 and config.patience == 5
    assert config.out == "models/tones"  # outputs: relative to the current folder, not to the file
    assert config.feature == {"name": "mfcc", "n_mfcc": 13}
    path.write_text(f'dataset = "{tones}"\nout = "m"\nepoch = 3\n')
    with pytest.raises(UsageError, match="unknown setting 'epoch'"):
        load_config(path)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"epochs": 0}, "epochs"),
        ({"augment": {"pitch": 2}}, "augmentation"),
        ({"feature": [TINY_FEATURE]}, "parallel"),
        ({"device": "tpu"}, "device"),
    ],
)
def test_bad_settings_are_usage_errors(tones, tmp_path, change, message):
    with pytest.raises(UsageError, match=message):
        tiny_config(tones, tmp_path / "m", **change)


def test_spec_augment_masks_with_the_segment_mean():
    torch.manual_seed(0)
    x = torch.randn(4, 10, 30) + torch.arange(4.0)[:, None, None] * 10
    augment = SpecAugment(freq_masks=2, freq_width=3, time_masks=2, time_width=5).train()
    y = augment(x)
    changed = y != x
    assert changed.any()
    means = x.mean(dim=(1, 2))
    for i in range(4):
        torch.testing.assert_close(y[i][changed[i]], means[i].expand(int(changed[i].sum())))
        assert changed[i].all(dim=1).sum() <= 6  # two frequency masks of at most three bins
    assert torch.equal(augment.eval()(x), x)
    assert torch.equal(SpecAugment(freq_masks=1).train()(torch.ones(2, 5)), torch.ones(2, 5))


def test_wave_augment_ranges():
    torch.manual_seed(0)
    x = torch.sin(torch.linspace(0, 100, 4000)).repeat(64, 1)
    gained = WaveAugment(gain_db=6).train()(x)
    ratio = gained.abs().amax(1) / x.abs().amax(1)
    assert (ratio >= 10 ** (-6 / 20) - 1e-6).all() and (ratio <= 10 ** (6 / 20) + 1e-6).all()
    assert ratio.std() > 0.1
    noisy = WaveAugment(noise_snr_db=20).train()(x)
    snr = 10 * torch.log10(x.square().mean(1) / (noisy - x).square().mean(1))
    assert (snr > 18).all() and (snr < 42).all()
    shifted = WaveAugment(shift=0.1).train()(x)
    torch.testing.assert_close(torch.sort(shifted, 1).values, torch.sort(x, 1).values)
    assert torch.equal(WaveAugment(gain_db=6, shift=0.5).eval()(x), x)


def test_fit_temperature_recovers_the_true_temperature():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(20000, 5, generator=g) * 3
    targets = torch.multinomial(torch.softmax(logits / 2.0, 1), 1, generator=g).squeeze(1)
    temperature, record = fit_temperature(logits, targets)
    assert temperature == pytest.approx(2.0, rel=0.05)
    assert record["nll_after"] < record["nll_before"]
    assert fit_temperature(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long))[0] == 1.0


def test_data_fingerprint_changes_with_the_data(tones, tmp_path):
    from genrekit.data.datasets import open_dataset

    tracks = open_dataset(tones).tracks
    first = data_fingerprint(tracks)
    assert first == data_fingerprint(list(reversed(tracks)))
    assert first != data_fingerprint(tracks[1:])


def test_feature_spec_is_completed_with_the_sample_rate():
    from genrekit.features.registry import resolve_feature

    spec, module = resolve_feature({"name": "mfcc", "n_mfcc": 13}, 16000)
    assert spec["sr"] == 16000 and spec["n_mfcc"] == 13 and spec["n_mels"] == 128
    assert module(torch.zeros(1, 16000)).shape[1] == 13
    assert resolve_feature({"name": "logmel", "sr": 8000}, 8000)[0]["n_mels"] == 128
    with pytest.raises(UsageError, match="works at 8000 Hz but sample_rate is 16000"):
        resolve_feature({"name": "logmel", "sr": 8000}, 16000)
    assert resolve_feature({"name": "summary"}, 8000)[0] == {"name": "summary", "sr": 8000}


def test_raw_waveform_samplecnn_run(tones, tmp_path):
    # overlapping windows (hop 1/4 window) give the raw-audio network enough steps to learn in
    config = tiny_config(tones, tmp_path / "m", feature={"name": "waveform"},
                         architecture={"name": "samplecnn", "channels": [8, 8, 8, 16, 16], "hidden": 16},
                         segment={"window": 0.5, "hop": 0.125}, augment={"gain_db": 3}, epochs=6, batch_size=16)
    result = train_model(config)
    assert result.spec.feature == {"name": "waveform", "sr": SR}
    assert result.spec.input_shape == [SR // 2]
    assert result.metrics["test"]["track_accuracy"] > 1 / 3
