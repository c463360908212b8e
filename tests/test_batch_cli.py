"""``genrekit predict`` on many files: library database reuse, options, output files, exit codes,
bundled model names, and calibrated probabilities from the model file's temperature."""

import csv
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

import genrekit.apps.library.results
import genrekit.inference.batch
from genrekit.apps.cli.main import main
from genrekit.errors import ModelError
from genrekit.inference.model import load_model
from genrekit.models.files import resolve_model_path

SR = 22050


def tone(freq, seconds=2.0, amp=0.3):
    t = np.arange(int(seconds * SR)) / SR
    return (amp * np.sin(2 * np.pi * freq * t) + 0.01 * np.sin(2 * np.pi * 3 * freq * t)).astype(np.float32)


@pytest.fixture
def music_folder(tmp_path):
    """Three files at the top, one in a subfolder, one that is not audio."""
    folder = tmp_path / "music"
    (folder / "sub").mkdir(parents=True)
    for i, freq in enumerate((220, 880, 3000)):
        sf.write(folder / f"track {i}.wav", tone(freq), SR)
    sf.write(folder / "sub" / "deep.flac", tone(440), SR)
    return folder


def run(capsys, *argv):
    """``genrekit ARGV`` in this process: (exit code, stdout, stderr)."""
    with pytest.raises(SystemExit) as stopped:
        main(list(map(str, argv)))
    out, err = capsys.readouterr()
    return stopped.value.code, out, err


def jsonl(text):
    return [json.loads(line) for line in text.splitlines()]


@pytest.fixture
def count_predict_calls(monkeypatch):
    """Record the paths each call of ``predict_files`` was given (it still runs)."""
    calls = []
    real = genrekit.apps.library.results.predict_files

    def spy(paths, model, **options):
        calls.append(sorted(Path(p).name for p in paths))
        return real(paths, model, **options)

    monkeypatch.setattr(genrekit.apps.library.results, "predict_files", spy)
    return calls


def test_db_answers_unchanged_files_and_force_recomputes(tiny_model_file, music_folder, tmp_path, capsys,
                                                         count_predict_calls):
    db = tmp_path / "state" / "library.sqlite"
    db.parent.mkdir()  # output paths go into existing folders
    base = ["predict", music_folder, "-m", tiny_model_file, "-f", "jsonl", "--db", db, "-j", "0"]
    code, out, _ = run(capsys, *base)
    first = jsonl(out)
    assert code == 0 and len(first) == 4
    assert count_predict_calls == [["deep.flac", "track 0.wav", "track 1.wav", "track 2.wav"]]

    code, out, err = run(capsys, *base)
    assert code == 0 and count_predict_calls[1:] == []  # nothing decoded
    assert sorted(jsonl(out), key=lambda r: r["path"]) == sorted(first, key=lambda r: r["path"])
    assert f"4 classified (4 answered from {db}), 0 failed" in err

    sf.write(music_folder / "track 1.wav", tone(110, 3.0), SR)  # edited since: predicted again
    code, out, _ = run(capsys, *base)
    assert count_predict_calls[1:] == [["track 1.wav"]]
    assert {r["path"]: r["duration"] for r in jsonl(out)}[str(music_folder / "track 1.wav")] == pytest.approx(3.0)

    run(capsys, *base, "--force")
    assert count_predict_calls[2:] == [["deep.flac", "track 0.wav", "track 1.wav", "track 2.wav"]]

    # other options give other records: never answered with stored ones that lack what was asked
    code, out, _ = run(capsys, *base, "--top-k", "5")
    assert len(count_predict_calls) == 4
    assert all(len(r["top"]) == 5 for r in jsonl(out))


def test_db_records_failures_and_retries_them(tiny_model_file, music_folder, tmp_path, capsys, count_predict_calls):
    (music_folder / "broken.wav").write_bytes(b"RIFF\x00\x00")
    base = ["predict", music_folder, "-m", tiny_model_file, "-f", "jsonl", "--db", tmp_path / "db.sqlite", "-j", "0"]
    assert run(capsys, *base)[0] == 1
    code, out, err = run(capsys, *base)
    assert code == 1
    assert count_predict_calls[1:] == [["broken.wav"]]  # a failed file is tried again, the rest reused
    assert [line for line in err.splitlines() if line.startswith("error: ")] == [
        f"error: {r['error']}" for r in jsonl(out) if "error" in r]


def test_no_recursive_takes_only_the_files_in_the_folder(tiny_model_file, music_folder, capsys):
    _, deep, _ = run(capsys, "predict", music_folder, "-m", tiny_model_file, "-f", "jsonl")
    _, flat, _ = run(capsys, "predict", music_folder, "-m", tiny_model_file, "-f", "jsonl", "--no-recursive")
    assert str(music_folder / "sub" / "deep.flac") in [r["path"] for r in jsonl(deep)]
    assert sorted(Path(r["path"]).name for r in jsonl(flat)) == ["track 0.wav", "track 1.wav", "track 2.wav"]


@pytest.mark.parametrize("fmt", ["jsonl", "json", "csv", "table"])
def test_output_file_holds_every_record(tiny_model_file, music_folder, tmp_path, capsys, fmt):
    target = tmp_path / f"results.{fmt}"
    code, out, _ = run(capsys, "predict", music_folder, "-m", tiny_model_file, "-f", fmt, "-o", target)
    assert code == 0 and out == ""
    text = target.read_text(encoding="utf-8")
    expected = sorted(str(p) for p in music_folder.rglob("*.*"))
    if fmt == "jsonl":
        paths = [r["path"] for r in jsonl(text)]
    elif fmt == "json":
        paths = [r["path"] for r in json.loads(text)]
    elif fmt == "csv":
        paths = [row["path"] for row in csv.DictReader(io.StringIO(text))]
    else:
        paths = [line for line in text.splitlines() if not line.startswith(" ")]
    assert sorted(paths) == expected
    assert not list(target.parent.glob(".*.tmp"))  # the atomic writer left no temporary file


def test_workers_and_batch_size_do_not_change_the_results(tiny_model_file, music_folder, capsys):
    outputs = {
        (workers, batch): run(capsys, "predict", music_folder, "-m", tiny_model_file, "-f", "jsonl",
                              "--segments", "-j", workers, "--batch-size", batch)[1]
        for workers, batch in ((0, 1), (2, 3), (1, 64))
    }
    first = next(iter(outputs.values()))
    assert len(jsonl(first)) == 4
    assert all(out == first for out in outputs.values())


def test_exit_code_and_summary(tiny_model_file, music_folder, capsys):
    code, _, err = run(capsys, "predict", music_folder, "-m", tiny_model_file, "-f", "jsonl")
    assert code == 0 and "4 classified, 0 failed" in err
    (music_folder / "notes.mp3").write_text("not music")
    code, out, err = run(capsys, "predict", music_folder, music_folder / "gone.wav", "-m", tiny_model_file, "-f", "csv")
    assert code == 1 and "4 classified, 2 failed" in err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [row["path"] for row in rows if row["error"]] == [str(music_folder / "notes.mp3"), str(music_folder / "gone.wav")]


def test_force_needs_db(tiny_model_file, music_folder, capsys):
    code, _, err = run(capsys, "predict", music_folder, "-m", tiny_model_file, "--force")
    assert code == 2 and "--force goes with --db" in err


def test_default_workers():
    assert genrekit.inference.batch.default_workers(1) == 0
    assert 1 <= genrekit.inference.batch.default_workers(100) <= 2


# --- bundled model names ------------------------------------------------------------------------


@pytest.fixture
def fake_package(tiny_model_file, tmp_path, monkeypatch):
    """A bundled-models folder that holds a model named ``fast``."""
    root = tmp_path / "package" / "models"
    root.mkdir(parents=True)
    for suffix in (".json", ".safetensors"):
        shutil.copy(tiny_model_file.with_suffix(suffix), root / f"fast{suffix}")
    monkeypatch.setattr("genrekit.models.files.bundled_models_dir", lambda: root)
    return root


def test_bundled_model_by_name(fake_package, tmp_path, monkeypatch, music_folder, capsys):
    monkeypatch.chdir(tmp_path)
    assert resolve_model_path("fast") == fake_package / "fast.json"
    assert load_model("fast").name == "tiny-test"
    code, out, _ = run(capsys, "predict", music_folder / "track 0.wav", "-m", "fast", "-f", "json")
    assert code == 0 and json.loads(out)["genre"]
    with pytest.raises(ModelError, match=r"bundled: fast\)"):
        load_model("no-such-model")
    # a path is a path: no fallback to the bundled model
    with pytest.raises(ModelError, match="model file not found"):
        load_model("models/fast.json")


def test_model_file_in_the_current_folder_wins_over_a_bundled_name(fake_package, tiny_model_file, tmp_path, monkeypatch):
    here = tmp_path / "here"
    here.mkdir()
    spec = json.loads(tiny_model_file.read_text())
    (here / "fast.json").write_text(json.dumps({**spec, "name": "my-own-fast"}))
    shutil.copy(tiny_model_file.with_suffix(".safetensors"), here / "fast.safetensors")
    monkeypatch.chdir(here)
    assert load_model("fast").name == "my-own-fast"


# --- calibration ----------------------------------------------------------------------------------


def with_temperature(model_file: Path, temperature: float, folder: Path) -> Path:
    """A copy of ``model_file`` whose calibration temperature is ``temperature``."""
    folder.mkdir(parents=True, exist_ok=True)
    spec = json.loads(model_file.read_text())
    spec["calibration"] = {"temperature": temperature, "method": "temperature-scaling"}
    target = folder / f"t{temperature}"
    target.with_suffix(".json").write_text(json.dumps(spec))
    shutil.copy(model_file.with_suffix(".safetensors"), target.with_suffix(".safetensors"))
    return target.with_suffix(".json")


def hand_probabilities(model, path, temperature):
    """Mean over the file's 3-s windows of softmax(logits / T), computed without genrekit.predict."""
    from genrekit.audio.decode import load_audio
    from genrekit.audio.segments import segment_samples

    audio = load_audio(path, model.sample_rate)
    windows = segment_samples(audio.samples, model.sample_rate, window=model.window).samples
    logits = model.segment_logits(torch.from_numpy(windows)).double()
    return torch.softmax(logits / temperature, dim=-1).mean(0).numpy()


def test_predict_uses_the_model_files_temperature(tiny_model_file, tmp_path, capsys, one_thread):
    path = tmp_path / "six seconds.wav"
    sf.write(path, np.concatenate([tone(180, 3.0), tone(2500, 3.0)]), SR)
    confidences = {}
    for temperature in (1.0, 3.0):
        model_file = with_temperature(tiny_model_file, temperature, tmp_path / "models")
        model = load_model(model_file)
        windows = torch.randn(5, int(model.window * model.sample_rate)) * 0.1
        torch.testing.assert_close(model.segment_probabilities(windows),
                                   torch.softmax(model.segment_logits(windows) / temperature, -1))
        code, out, _ = run(capsys, "predict", path, "-m", model_file, "-f", "json", "-k", "10")
        record = json.loads(out)
        expected = hand_probabilities(model, path, temperature)
        reported = np.array([dict((t["genre"], t["probability"]) for t in record["top"])[g] for g in model.labels])
        np.testing.assert_allclose(reported, expected, atol=2e-6)
        confidences[temperature] = record["confidence"]
    # a higher temperature flattens the distribution: the same genre, with less confidence
    assert 1 / 10 < confidences[3.0] < confidences[1.0]


@pytest.fixture
def one_thread():
    """Small networks train faster on one thread than on cores shared with other processes."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_trained_temperature_reaches_predict(tmp_path, one_thread):
    """train_model fits a temperature into the model file; predictions are softmax(logits / T)."""
    from tones import SR as TONE_SR
    from tones import (
        TINY_CNN,
        TINY_FEATURE,
        TINY_SEGMENT,
        make_tone_dataset,
        tone_track,
    )

    from genrekit.training.config import TrainConfig
    from genrekit.training.loop import train_model

    config = TrainConfig.from_dict(dict(
        dataset=str(make_tone_dataset(tmp_path / "tones")), out=str(tmp_path / "tones-model"),
        sample_rate=TONE_SR, segment=TINY_SEGMENT, feature=TINY_FEATURE, architecture=TINY_CNN,
        split={"method": "random", "valid_size": 0.2, "test_size": 0.2}, epochs=3, batch_size=8,
        learning_rate=0.01, patience=0, cache_dir="", checkpoint=False,
    ))
    result = train_model(config)
    temperature = result.spec.temperature
    assert result.spec.calibration["method"] == "temperature-scaling"
    assert abs(temperature - 1.0) > 1e-3  # fitted, not the default
    model = load_model(result.model_path)
    assert model.temperature == pytest.approx(temperature)
    audio = tone_track(700.0, 2.0, np.random.default_rng(5))
    prediction = model.predict(audio, sr=TONE_SR, top_k=3)
    windows = torch.from_numpy(audio.reshape(4, -1))  # 2 s in 0.5-s windows
    logits = model.segment_logits(windows).double()
    expected = torch.softmax(logits / temperature, -1).mean(0).numpy()
    uncalibrated = torch.softmax(logits, -1).mean(0).numpy()
    assert prediction.confidence == pytest.approx(expected.max(), abs=1e-6)
    assert abs(expected.max() - uncalibrated.max()) > 1e-4  # the check above can tell T from 1


def test_bundled_default_model(tmp_path):
    """The shipped default loads by name, is small, calibrated, records its artist-grouped CV; the
    ``fast`` CNN (15 % on unheard artists) is no longer bundled."""
    from genrekit.models.files import bundled_model_names, model_paths

    assert "default" in bundled_model_names() and "fast" not in bundled_model_names()
    model = load_model("default")
    json_path, weights_path = model_paths(model.source)
    assert json_path.stat().st_size + weights_path.stat().st_size < 2_000_000
    assert model.labels == ["blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock"]
    assert model.spec.calibration["method"] == "temperature-scaling"
    assert model.spec.metrics["cv_artist"]["track_accuracy_mean"] >= 0.75
    path = tmp_path / "clip.wav"
    sf.write(path, np.concatenate([tone(220, 3.0), tone(660, 4.5)]), SR)  # 2 windows + a 1.5-s tail
    record = genrekit.inference.predict.predict_audio(model, path, segments=True).to_dict()
    assert record["genre"] in model.labels and len(record["segments"]) == 3
