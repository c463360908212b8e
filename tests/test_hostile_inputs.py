"""Hostile samples and arguments (issue 13, items 1-2): no NaN answer, no NaN in JSON or a tag
decision, arrays cleaned like files, bad arguments refused with a UsageError."""

import io
import json
import math

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from genrekit.audio.clean import (
    MAX_SAMPLE,
    SampleRepairs,
    as_mono_float32,
    clean_samples,
)
from genrekit.errors import GenrekitError, UsageError
from genrekit.inference.model import load_model
from genrekit.inference.writers import write_records

SR = 22050


@pytest.fixture(scope="module")
def tiny(tiny_model_file):
    return load_model(tiny_model_file)


def _tone(seconds=3.0, sr=SR, freq=440.0):
    t = np.arange(int(seconds * sr)) / sr
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _assert_valid(prediction, labels):
    record = prediction.to_dict()
    json.dumps(record, allow_nan=False)  # raises on NaN/inf anywhere
    assert math.isfinite(prediction.confidence) and 0.0 <= prediction.confidence <= 1.0
    assert math.isfinite(prediction.duration) and prediction.duration >= 0
    if not prediction.silent:
        assert prediction.genre in labels


def test_clean_samples_replaces_non_finite_and_clips_huge_values():
    block = np.array([0.1, np.nan, np.inf, -np.inf, 1e19, -1e19, 2.0], np.float32)
    repairs = SampleRepairs()
    out = clean_samples(block, repairs)
    assert np.isnan(block[1])  # the caller's array is left alone
    np.testing.assert_array_equal(out, np.array([0.1, 0, 0, 0, MAX_SAMPLE, -MAX_SAMPLE, 2.0], np.float32))
    assert (repairs.non_finite, repairs.clipped) == (3, 2)
    assert "3 non-finite" in repairs.describe() and "2 samples beyond" in repairs.describe()


def test_huge_float_wav_gives_a_finite_answer_and_says_it_was_repaired(tiny, tmp_path):
    path = tmp_path / "huge.wav"
    sf.write(path, _tone(6.0) * np.float32(1e19), SR, subtype="FLOAT")
    prediction = tiny.predict(str(path))
    _assert_valid(prediction, tiny.labels)
    assert prediction.warnings and "clipped" in prediction.warnings[0]
    assert prediction.to_dict()["warnings"] == prediction.warnings


def test_huge_float_wav_in_a_batch_gives_finite_records(tiny, tmp_path):
    from genrekit.inference.batch import predict_files

    sf.write(tmp_path / "huge.wav", _tone(6.0) * np.float32(1e19), SR, subtype="FLOAT")
    sf.write(tmp_path / "fine.wav", _tone(6.0), SR, subtype="FLOAT")
    records = list(predict_files([tmp_path], tiny))
    assert len(records) == 2
    for record in records:
        json.dumps(record, allow_nan=False)
        assert math.isfinite(record["confidence"])
    by_name = {r["path"].rsplit("/", 1)[-1]: r for r in records}
    assert "clipped" in by_name["huge.wav"]["warnings"][0]
    assert "warnings" not in by_name["fine.wav"]


@pytest.mark.parametrize("fmt", ["json", "jsonl"])
def test_json_writers_refuse_nan(fmt):
    record = {"path": "x.wav", "genre": "rock", "confidence": float("nan"), "top": [], "duration": 1.0}
    with pytest.raises(ValueError):
        write_records([record], fmt, io.StringIO())


def test_nan_confidence_never_becomes_a_tag_write(tmp_path):
    from genrekit.apps.library.genre_tags import WRITE, plan_tag_changes

    path = tmp_path / "song.wav"
    sf.write(path, _tone(1.0), SR)
    changes = plan_tag_changes([{"path": str(path), "genre": "rock", "confidence": float("nan")}],
                               min_confidence=0.5)
    assert [c.action for c in changes] != [WRITE]


def test_model_giving_nan_is_an_error_not_an_answer(tiny, monkeypatch):
    import torch

    monkeypatch.setattr(type(tiny), "segment_probabilities",
                        lambda self, segments: torch.full((len(segments), len(self.labels)), float("nan")))
    with pytest.raises(GenrekitError, match="non-finite"):
        tiny.predict(_tone(), SR)


def test_arrays_with_nan_and_inf_are_cleaned_and_reported(tiny):
    samples = _tone(6.0)
    samples[[5, 500, 5000]] = [np.nan, np.inf, -np.inf]
    prediction = tiny.predict(samples, SR)
    _assert_valid(prediction, tiny.labels)
    assert "3 non-finite" in prediction.warnings[0]


def test_channels_last_array_is_detected(tiny):
    stereo = np.stack([_tone(6.0), _tone(6.0, freq=880.0)])
    first = tiny.predict(stereo, SR)
    last = tiny.predict(stereo.T.copy(), SR)  # (n, 2), as soundfile.read returns it
    assert not last.silent
    assert last.duration == pytest.approx(6.0)
    assert last.genre == first.genre and last.confidence == pytest.approx(first.confidence, abs=1e-6)


def test_integer_pcm_is_scaled(tiny):
    samples = _tone(6.0)
    pcm = np.round(samples * 32767).astype(np.int16)
    as_int = tiny.predict(pcm, SR)
    as_float = tiny.predict(pcm.astype(np.float32) / 32768, SR)
    assert as_int.genre == as_float.genre
    assert as_int.confidence == pytest.approx(as_float.confidence, abs=1e-6)
    np.testing.assert_allclose(as_mono_float32(np.array([0, 128, 255], np.uint8)), [-1, 0, 127 / 128])


@pytest.mark.parametrize("kwargs, message", [
    (dict(offset=-5), "offset"),
    (dict(offset=float("nan")), "offset"),
    (dict(offset=float("inf")), "offset"),
    (dict(max_duration=-1), "max_duration"),
    (dict(max_duration=0), "max_duration"),
    (dict(sr=0), "sr"),
    (dict(sr=-22050), "sr"),
    (dict(sr=22050.5), "sr"),
    (dict(sr=None), "sr"),
    (dict(top_k=0), "top_k"),
])
def test_bad_arguments_raise_usage_errors(tiny, kwargs, message):
    options = dict(sr=SR) | kwargs
    sr = options.pop("sr")
    with pytest.raises(UsageError, match=message):
        tiny.predict(_tone(6.0), sr, **options)


@pytest.mark.parametrize("array", [
    np.zeros((2, 3, 4), np.float32), np.array(1.0), np.ones(100, bool), np.ones(100, complex),
    np.ones(100, np.uint16), np.array(["a", "b"]), np.ones((40, 40), np.float32),
])
def test_unusable_arrays_raise_usage_errors(tiny, array):
    with pytest.raises(UsageError):
        tiny.predict(array, SR)


def test_bad_offset_for_a_file_is_a_usage_error(tiny, tmp_path):
    path = tmp_path / "tone.wav"
    sf.write(path, _tone(6.0), SR)
    for options in (dict(offset=-5), dict(offset=float("nan")), dict(max_duration=-1)):
        with pytest.raises(UsageError):
            tiny.predict(str(path), **options)


_DTYPES = st.sampled_from([np.float32, np.float64, np.float16, np.int16, np.int32, np.int8, np.uint8,
                           np.int64, np.uint16, bool, np.complex64])
_SPECIAL = st.sampled_from([0.0, np.nan, np.inf, -np.inf, 1e19, -1e30, 1.0, -1.0, 1e-30])


@st.composite
def _arrays(draw):
    dtype = np.dtype(draw(_DTYPES))
    ndim = draw(st.integers(0, 3))
    shape = tuple(draw(st.lists(st.integers(0, 9000), min_size=ndim, max_size=ndim)))
    if ndim == 2 and draw(st.booleans()):  # realistic multichannel shapes
        shape = draw(st.sampled_from([(2, shape[1]), (shape[0], 2), (1, shape[1])]))
    if np.prod(shape, dtype=np.int64) > 40000:
        shape = shape[:1]
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    values = rng.normal(0, draw(st.sampled_from([0.0, 1e-6, 0.3, 3.0, 1e20])), size=shape)
    if values.size and draw(st.booleans()):
        values.flat[draw(st.integers(0, values.size - 1))] = draw(_SPECIAL)
    with np.errstate(all="ignore"):
        if dtype.kind in "iu":
            info = np.iinfo(dtype)
            values = np.clip(np.nan_to_num(values * info.max), info.min, info.max)
        return values.astype(dtype)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    array=_arrays(),
    sr=st.sampled_from([22050, 8000, 44100, 1000, 0, -1, 22050.0, 3.5, None]),
    offset=st.sampled_from([0.0, 0.5, 2.0, 100.0, -1.0, float("nan"), float("inf")]),
    max_duration=st.sampled_from([None, 0.1, 1.0, 3.0, 0.0, -1.0, float("nan"), float("inf")]),
    top_k=st.sampled_from([1, 3, 10, 20, 0]),
    aggregate=st.sampled_from(["mean", "vote", "median"]),
    segments=st.booleans(),
)
def test_fuzz_predict_gives_a_valid_result_or_a_genrekit_error(tiny, array, sr, offset, max_duration,
                                                               top_k, aggregate, segments):
    try:
        prediction = tiny.predict(array, sr, offset=offset, max_duration=max_duration, top_k=top_k,
                                  aggregate=aggregate, segments=segments)
    except GenrekitError:
        return
    _assert_valid(prediction, tiny.labels)
    assert len(prediction.top) <= top_k
    assert all(math.isfinite(p) for _, p in prediction.top)
