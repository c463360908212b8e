"""Model files of every registered feature load with ``genrekit.load_model``: the registry is one literal table."""

import numpy as np
import pytest
import torch
from tones import GENRES, SR, TINY_SEGMENT, make_tone_dataset, tone_track

from genrekit.errors import UsageError
from genrekit.features import registry
from genrekit.inference.model import load_model
from genrekit.training.config import TrainConfig
from genrekit.training.loop import train_model

pytestmark = pytest.mark.usefixtures("quiet_single_thread")


@pytest.fixture(scope="module")
def tones(tmp_path_factory):
    return make_tone_dataset(tmp_path_factory.mktemp("tones"), tracks_per_genre=4, seconds=1.0)


def _train(tones, out, feature, architecture, epochs=1):
    config = TrainConfig.from_dict(dict(
        dataset=str(tones), out=str(out), sample_rate=SR, segment=TINY_SEGMENT, feature=feature,
        architecture=architecture, split={"method": "random", "valid_size": 0.2, "test_size": 0.2},
        epochs=epochs, batch_size=8, patience=0, cache_dir="", device="cpu", checkpoint=False,
    ))
    return train_model(config)


@pytest.mark.parametrize("feature, architecture", [
    # librosa's summary features take seconds (numba compiles on first use)
    pytest.param({"name": "summary"}, {"name": "sklearn-logreg"}, marks=pytest.mark.slow),
    ({"name": "waveform"}, {"name": "samplecnn", "channels": [4, 4, 4, 8], "hidden": 0, "dropout": 0.0}),
])
def test_saved_model_of_a_non_spectral_feature_loads_and_predicts(tones, tmp_path, feature, architecture):
    result = _train(tones, tmp_path / "model", feature, architecture)
    model = load_model(result.model_path)
    assert model.spec.feature["name"] == feature["name"]
    assert model.spec.feature["sr"] == SR
    audio = tone_track(GENRES["mid"], 1.0, np.random.default_rng(5))
    prediction = model.predict(audio, sr=SR)
    assert prediction.genre in GENRES
    # the loaded model computes what the trained network computed on the same segment
    segment = torch.from_numpy(audio[: int(TINY_SEGMENT["window"] * SR)])[None]
    with torch.no_grad():
        expected = result.network.eval()(model.feature(segment))
    torch.testing.assert_close(model.segment_logits(segment), expected)


def test_build_feature_names_every_feature_in_its_error():
    with pytest.raises(UsageError, match="summary.*waveform"):
        registry.build_feature({"name": "no-such-feature"})
