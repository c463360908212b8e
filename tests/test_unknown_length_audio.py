"""Audio whose header states no length (issue 13, items 5 and 7): a Matroska file of FLAC silence
hours long without a duration, and a FLAC file whose STREAMINFO says 0 total samples ("unknown",
as streaming encoders write). Such files are measured by counting samples, and the counting goes
no further than the caller needs (``audio_info(max_duration=...)``, a ``duration`` to decode).

The files come from ``headerless_audio.py`` (fixtures ``hour_of_silence``, ``unknown_length_flac``
and ``decoded_samples`` in conftest.py).
"""

import av
import numpy as np
import pytest
import soundfile as sf

from genrekit.audio.decode import audio_info, load_audio, stream_audio
from genrekit.inference.model import load_model

SR = 22050


@pytest.fixture(scope="module")
def tiny_model(tiny_model_file):
    return load_model(tiny_model_file)

# ---- item 5: decode work is bounded by the duration limit ---------------------------------------


def test_the_test_file_really_states_no_duration(hour_of_silence):
    assert hour_of_silence.stat().st_size < 4_000_000
    with av.open(str(hour_of_silence)) as container:
        assert container.duration is None and container.streams.audio[0].duration is None


def test_counting_a_length_stops_at_the_limit(hour_of_silence, decoded_samples):
    info = audio_info(hour_of_silence, max_duration=60)
    assert info.lower_bound and 60 < info.duration < 62
    assert decoded_samples[0] < 62 * 8000
    blocks = list(stream_audio(hour_of_silence, 8000, duration=5))
    assert sum(len(b) for b in blocks) == 5 * 8000
    assert decoded_samples[0] < (62 + 7 + 6) * 8000  # counted to 6 s, then 5 s decoded
    assert load_audio(hour_of_silence, 8000, duration=2).source_duration is None  # not known

def test_model_predict_counts_only_what_it_classifies(tiny_model, hour_of_silence, decoded_samples):
    result = tiny_model.predict(str(hour_of_silence), max_duration=6)
    assert result.duration == pytest.approx(6.0)
    assert decoded_samples[0] < 3 * 9 * 8000

# ---- item 7: FLAC whose STREAMINFO says 0 total samples ------------------------------------------


def test_flac_of_unknown_length_is_decoded_and_measured(unknown_length_flac):
    assert sf.info(str(unknown_length_flac)).frames > 2**62  # libsndfile: "unknown"
    info = audio_info(unknown_length_flac)
    assert info.frames == 5 * SR and info.duration == pytest.approx(5.0) and not info.lower_bound
    audio = load_audio(unknown_length_flac, SR)
    assert audio.samples.shape == (5 * SR,) and audio.source_duration == pytest.approx(5.0)
    reference = load_audio(unknown_length_flac.with_name("known-length.flac"), SR)
    assert np.array_equal(audio.samples, reference.samples)


def test_flac_of_unknown_length_in_predict(tiny_model, unknown_length_flac):
    result = tiny_model.predict(str(unknown_length_flac), segments=True)
    assert result.duration == pytest.approx(5.0) and len(result.segments) == 2

def test_flac_of_unknown_length_in_tags(unknown_length_flac):
    import importlib.metadata

    try:
        importlib.metadata.version("musicnn")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("musicnn weights not installed")
    from genrekit.features.musicnn.tags import tag_file

    result = tag_file(unknown_length_flac)
    assert result["duration"] == pytest.approx(5.0) and result["tags"]
