"""Not music: speech, noise, tones, clicks and hum get no genre; music keeps its genre.

The generated corpus (tests/notmusic_corpus.py) speaks with Debian's espeak-ng; the tests that
need speech skip, saying so, when it is not installed (``./run test`` installs it). The seed
used here (11) is none of those the detector was fitted on (0 and 1).
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict

import notmusic_corpus
import numpy as np
import pytest
import soundfile as sf

from genrekit.inference.taggram import (
    detect_not_music,
    not_music_scores,
    taggram_features,
)

SR = 16000
needs_espeak = pytest.mark.skipif(not notmusic_corpus.espeak_available(),
                                  reason="espeak-ng is not installed (apt-get install -y --no-install-recommends "
                                         "espeak-ng; ./run test does it): no speech to test with")


@pytest.fixture(scope="module")
def model():
    from genrekit import load_model

    return load_model()


def _speech(seconds: float, seed: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = notmusic_corpus._speech_clip(rng, "en", "m3", SR, int(seconds * SR))
    return notmusic_corpus._norm(x, -20.0)


def test_bundled_default_model_carries_a_detector(model):
    block = model.not_music
    assert block is not None and len(block["weight"]) == 53 and 0 < block["file_fraction"] <= 1
    assert model.gives_taggram


def test_file_rule_counts_full_non_silent_segments():
    block = {"weight": np.zeros(53), "bias": 0.0, "threshold": 0.5, "file_fraction": 0.8}
    taggram = np.full((5, 50), 0.1)
    # bias 1 > threshold: every segment not music; silent ones never are, and do not count
    flagged, fraction = detect_not_music({**block, "bias": 1.0}, taggram, np.array([0, 0, 1, 0, 0], bool),
                                         np.array([3, 3, 3, 3, 1.0]), 3.0)
    assert flagged.tolist() == [True, True, False, True, True] and fraction == 1.0
    flagged, fraction = detect_not_music(block, taggram, np.zeros(5, bool), np.full(5, 3.0), 3.0)
    assert not flagged.any() and fraction == 0.0
    _, fraction = detect_not_music(block, taggram, np.ones(5, bool), np.full(5, 3.0), 3.0)
    assert np.isnan(fraction)
    assert taggram_features(taggram).shape == (5, 53)
    assert np.isfinite(not_music_scores({**block, "weight": np.ones(53)}, np.zeros((2, 50)))).all()


def test_model_without_a_detector_never_says_not_music(tiny_model_file):
    from genrekit import load_model

    tiny = load_model(tiny_model_file)
    assert tiny.not_music is None and not tiny.gives_taggram
    noise = np.random.default_rng(0).normal(0, 0.1, 6 * 22050).astype(np.float32)
    result = tiny.predict(noise, 22050, segments=True).to_dict()
    assert result["genre"] is not None and "not_music" not in result


def test_not_music_block_needs_the_msd_taggram(tiny_model_file, tmp_path):
    from genrekit import load_model
    from genrekit.errors import ModelError

    spec = json.loads(tiny_model_file.with_suffix(".json").read_text())
    spec["not_music"] = {"weight": [0.0] * 53, "bias": 0.0, "threshold": 1.0, "file_fraction": 0.8}
    (tmp_path / "bad.json").write_text(json.dumps(spec))
    (tmp_path / "bad.safetensors").write_bytes(tiny_model_file.with_suffix(".safetensors").read_bytes())
    with pytest.raises(ModelError, match="MSD_musicnn taggram"):
        load_model(tmp_path / "bad.json")


@needs_espeak
def test_generated_corpus_comes_back_not_music(model):
    """Speech in several voices and languages, noise colours, pure and swept tones, clicks,
    hum over silence, mixtures, field and animal sounds: most files get no genre."""
    items = notmusic_corpus.generate_corpus(seed=11, per_variant=1, require_speech=True)
    families = Counter(item.family for item in items)
    assert {"speech", "noise", "tone", "sweep", "click", "hum"} <= set(families)
    assert len({item.variant.split("+")[0] for item in items if item.family == "speech"}) >= 8  # languages
    rejected = defaultdict(int)
    for item in items:
        result = model.predict(item.samples, item.sr, segments=True)
        if result.not_music:
            rejected[item.family] += 1
            assert result.genre is None and result.top == [] and result.uncertain
            record = result.to_dict()
            assert record["genre"] is None and record["not_music"] is True
            assert any(s.get("not_music") for s in record["segments"])
        else:
            assert result.genre is not None
    rate = sum(rejected.values()) / len(items)
    summary = {f: f"{rejected[f]}/{n}" for f, n in sorted(families.items())}
    assert rate >= 0.8, summary
    assert rejected["speech"] / families["speech"] >= 0.8, summary
    assert 0 < rejected["hum"], summary  # silence with mains hum is not silent, and not music


@needs_espeak
def test_music_intro_then_speech_shows_both(model, gtzan_mini):
    """A podcast: 9 s of music, then speech. Its segments say both; the genre comes from the music."""
    from genrekit.audio.decode import load_audio

    music = load_audio(sorted((gtzan_mini / "country").glob("*.flac"))[0], SR).samples[: 9 * SR]
    podcast = np.concatenate([music, _speech(15.0)])
    result = model.predict(podcast, SR, segments=True).to_dict()
    kinds = ["not music" if s.get("not_music") else s["genre"] for s in result["segments"]]
    assert all(kind != "not music" for kind in kinds[:3]), kinds
    assert kinds[3:].count("not music") >= 3, kinds
    assert result["genre"] is not None and "not_music" not in result, kinds
    speech_only = model.predict(_speech(15.0, seed=4), SR, segments=True).to_dict()
    assert speech_only["genre"] is None and speech_only["not_music"] is True


def _noise_file(tmp_path, seconds=9.0):
    path = tmp_path / "hiss.wav"
    sf.write(path, np.random.default_rng(1).normal(0, 0.05, int(seconds * SR)).astype(np.float32), SR)
    return path


def run(capsys, *argv):
    """``genrekit ARGV`` in this process: (exit code, stdout)."""
    from genrekit.apps.cli.main import main

    with pytest.raises(SystemExit) as stopped:
        main(list(map(str, argv)))
    return stopped.value.code, capsys.readouterr().out


def test_cli_says_not_music_and_tag_writes_nothing(tmp_path, capsys):
    from mutagen.wave import WAVE

    path = _noise_file(tmp_path)
    code, out = run(capsys, "predict", path, "-f", "json", "--segments")
    record = json.loads(out)
    assert code == 0 and record["genre"] is None and record["not_music"] is True and record["top"] == []
    assert all(s["not_music"] and s["genre"] is None for s in record["segments"])
    code, table = run(capsys, "predict", path, "--segments")
    assert code == 0 and "not music" in table and "(not music)" in table
    code, out = run(capsys, "tag", path, "--write", "--min-confidence", "0", "--db", tmp_path / "lib.sqlite")
    assert code == 0 and "no genre (not music)" in out
    assert WAVE(path).tags is None or not WAVE(path).tags.getall("TCON")


def test_service_says_not_music(tmp_path):
    from fastapi.testclient import TestClient

    from genrekit import load_model
    from genrekit.apps.service.app import create_app

    path = _noise_file(tmp_path)
    with TestClient(create_app(load_model(), allowed_hosts=["testserver"])) as client:
        assert client.get("/v1/models").json()["models"][0]["not_music"] is True
        with open(path, "rb") as fh:
            response = client.post("/v1/predict?segments=true", files={"file": ("hiss.wav", fh, "audio/wav")})
    body = response.json()
    assert response.status_code == 200 and body["genre"] is None and body["not_music"] is True
    assert all(s["not_music"] for s in body["segments"])


@pytest.mark.slow
def test_every_gtzan_mini_clip_keeps_a_genre(model, gtzan_mini):
    from genrekit.inference.batch import predict_files

    records = list(predict_files([gtzan_mini], model, segments=True))
    assert len(records) == 80
    rejected = [r["path"] for r in records if r.get("not_music") or r.get("genre") is None]
    assert rejected == []
    flagged = sum(bool(s.get("not_music")) for r in records for s in r["segments"])
    assert flagged <= 8  # of 800 segments: the detector flags about 0.5 % of music segments
