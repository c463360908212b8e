"""The prediction pipeline with a small hand-built model whose answer is known in advance.

The model says "low" for windows whose energy sits below 1 kHz and "high" otherwise, so the
expected genre of every synthetic file is known and the pipeline's mechanics (segmentation,
silence, aggregation, batching across files, worker processes, error records) can be checked
exactly.
"""

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from torch import nn

from genrekit.inference.batch import predict_files
from genrekit.inference.model import GenreModel
from genrekit.inference.predict import predict_audio

SR = 8000


class BandEnergy(nn.Module):
    """(batch, samples) -> (batch, 2): log energy below / above 1 kHz."""

    def forward(self, x):
        spectrum = torch.fft.rfft(x, dim=-1).abs() ** 2
        cut = int(1000 * x.shape[-1] / SR)
        return torch.log(torch.stack([spectrum[:, :cut].sum(-1), spectrum[:, cut:].sum(-1)], -1) + 1e-9)


class Compare(nn.Module):
    def forward(self, bands):
        return torch.stack([bands[:, 0] - bands[:, 1], bands[:, 1] - bands[:, 0]], -1)


@pytest.fixture(scope="module")
def band_model():
    spec = {"name": "band-test", "labels": ["low", "high"], "sample_rate": SR,
            "segment": {"window": 1.0, "hop": 1.0, "last": "pad"}, "calibration": {"temperature": 1.0},
            "feature": {"name": "band-energy"}, "architecture": {"name": "compare"}}
    return GenreModel(spec=spec, feature=BandEnergy(), network=Compare())


def tone(freq, seconds, sr=SR, amp=0.3):
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def write(path, samples, sr=SR):
    sf.write(path, samples, sr)
    return str(path)


def test_timeline_follows_the_music(band_model, tmp_path):
    path = write(tmp_path / "low-then-high.wav", np.concatenate([tone(200, 3), tone(3000, 2.5)]))
    result = predict_audio(band_model, path, segments=True, top_k=2)
    assert result.genre == "low"
    assert [s.genre for s in result.segments] == ["low"] * 3 + ["high"] * 3
    assert result.segments[-1].end == pytest.approx(5.5)
    assert result.duration == pytest.approx(5.5)
    assert [g for g, _ in result.top] == ["low", "high"]
    assert sum(p for _, p in result.top) == pytest.approx(1.0)


def test_mean_and_vote_aggregation_disagree_when_they_should(band_model):
    # two quiet high windows and one loud, very sure low window
    samples = np.concatenate([tone(3000, 1, amp=0.05) + tone(200, 1, amp=0.045), tone(3000, 1, amp=0.05) + tone(200, 1, amp=0.045), tone(200, 1)])
    by_vote = predict_audio(band_model, samples, sr=SR, aggregate="vote")
    by_mean = predict_audio(band_model, samples, sr=SR, aggregate="mean")
    assert by_vote.genre == "high"
    assert by_mean.genre == "low"


def test_array_input_is_resampled(band_model):
    result = predict_audio(band_model, tone(3000, 2, sr=22050), sr=22050)
    assert result.genre == "high" and result.duration == pytest.approx(2.0)


def test_silence_is_reported_not_classified(band_model, tmp_path):
    path = write(tmp_path / "silence.wav", np.zeros(SR * 2, dtype=np.float32))
    result = predict_audio(band_model, path, segments=True).to_dict()
    assert result["genre"] is None and result["silent"] is True
    assert all(seg["silent"] for seg in result["segments"])


def test_short_clip_is_padded_and_flagged(band_model, tmp_path):
    path = write(tmp_path / "short.wav", tone(200, 0.3))
    result = predict_audio(band_model, path).to_dict()
    assert result["genre"] == "low" and result["short"] is True
    assert result["duration"] == pytest.approx(0.3)
    assert result["uncertain"] is True  # under half a window: too little audio to judge


def test_offset_and_max_duration(band_model, tmp_path):
    path = write(tmp_path / "two-parts.wav", np.concatenate([tone(200, 3), tone(3000, 3)]))
    result = predict_audio(band_model, path, offset=3.0, max_duration=2.0, segments=True)
    assert result.genre == "high"
    assert result.segments[0].start == pytest.approx(3.0)
    assert result.segments[-1].end == pytest.approx(5.0)


@pytest.mark.parametrize("workers", [0, 2])
def test_batch_reports_every_file_in_order(band_model, tmp_path, workers):
    good_low = write(tmp_path / "a low.wav", tone(200, 2))
    (tmp_path / "b-not-audio.wav").write_text("this is text, not audio")
    good_high = write(tmp_path / "c high ünïcode.wav", tone(3000, 1.5))
    (tmp_path / "d-empty.wav").write_bytes(b"")
    records = list(predict_files([tmp_path, tmp_path / "missing.flac"], band_model,
                                 workers=workers, batch_size=2))
    assert [r["path"] for r in records] == [
        good_low, str(tmp_path / "b-not-audio.wav"), good_high, str(tmp_path / "d-empty.wav"),
        str(tmp_path / "missing.flac")]
    assert [r.get("genre") for r in records] == ["low", None, "high", None, None]
    for bad in records[1], records[3], records[4]:
        assert set(bad) == {"path", "error"} and bad["path"] in bad["error"]
    json.dumps(records)  # every record is plain JSON


def test_workers_give_the_same_answers(band_model, tmp_path):
    for i in range(4):
        write(tmp_path / f"{i}.wav", tone(200 if i % 2 else 3000, 1 + i / 2))
    serial = list(predict_files([tmp_path], band_model, segments=True))
    parallel = list(predict_files([tmp_path], band_model, segments=True, workers=2, batch_size=3))
    assert serial == parallel


@pytest.mark.parametrize("workers", [0, 1])
def test_duration_is_the_audio_not_the_windows(band_model, tmp_path, workers):
    path = write(tmp_path / "sliver.wav", tone(200, 3.1))  # 0.1 s after the last window: dropped
    direct = predict_audio(band_model, path, segments=True)
    assert len(direct.segments) == 3 and direct.duration == pytest.approx(3.1)
    [record] = predict_files([path], band_model, workers=workers, segments=True)
    assert record["duration"] == pytest.approx(3.1) and len(record["segments"]) == 3
    assert predict_audio(band_model, path, offset=1.0, max_duration=1.5).duration == pytest.approx(1.5)


@pytest.mark.slow
def test_bundled_default_model_from_the_cli(gtzan_mini, capsys):
    """The bundled model loads offline and answers in the documented JSON shape.

    The clips are among the model's training data, so the accuracy bar only checks that the
    shipped weights are the trained ones (held-out figures are in docs/model-card.md).
    """
    from genrekit.apps.cli.main import main

    clips = [sorted((gtzan_mini / genre).glob("*.flac"))[7] for genre in sorted(p.name for p in gtzan_mini.iterdir() if p.is_dir())]
    with pytest.raises(SystemExit) as exit_info:
        main(["--quiet", "predict", "--format", "json", "--segments", "--top-k", "2", *map(str, clips)])
    assert exit_info.value.code == 0
    records = json.loads(capsys.readouterr().out)
    assert len(records) == 10
    for record in records:
        assert {"path", "genre", "confidence", "top", "duration", "segments"} <= set(record)
        assert len(record["top"]) == 2 and record["top"][0]["genre"] == record["genre"]
        assert len(record["segments"]) == 10
        assert sum(record["segments"][0]["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
    correct = sum(r["genre"] == Path(r["path"]).parent.name for r in records)
    assert correct >= 8
