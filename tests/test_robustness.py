"""Prediction on the files a real music library holds: broken, odd, huge and oddly named ones.

Every case must give either a result or one clear error line naming the file, and never stop
the batch. The model is a genuine genrekit model with random weights and a cheap front end:
these tests check behaviour, not accuracy.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from genrekit.inference.batch import predict_files
from genrekit.inference.model import load_model

SR = 16000
GENRES = ["blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock"]


def save_tiny_model(path, sample_rate=SR, temperature=1.0):
    """A 16 kHz log-mel + one-block CNN model with seeded random weights; returns its JSON path."""
    import torch

    from genrekit.models.files import save_model
    from genrekit.models.registry import build_model

    torch.manual_seed(0)
    network = build_model({"name": "cnn2d", "input_shape": [32, 188], "channels": [4], "hidden": 0,
                           "dropout": 0.0}, n_classes=len(GENRES))
    spec = {"name": "tiny-robustness", "labels": GENRES, "sample_rate": sample_rate,
            "segment": {"window": 3.0, "hop": 3.0, "last": "pad"},
            "feature": {"name": "logmel", "sr": sample_rate, "n_fft": 512, "hop_length": 256, "n_mels": 32},
            "architecture": network.spec, "calibration": {"temperature": temperature}}
    return save_model(path, spec, {f"network.{name}": t for name, t in network.state_dict().items()})


def music(sr, seconds, channels=1, seed=0):
    """A tone with harmonics and noise: not silence, the same for a given seed and rate."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(sr * seconds))) / sr
    x = 0.2 * np.sin(2 * np.pi * 330 * t) + 0.1 * np.sin(2 * np.pi * 990 * t) + 0.05 * rng.standard_normal(t.size)
    x = x.astype(np.float32)
    return np.repeat(x[:, None], channels, axis=1) if channels > 1 else x


def reads_despite_chmod_000(path) -> bool:
    """True where permissions do not block reads (root, some container file systems)."""
    try:
        with open(path, "rb"):
            return True
    except PermissionError:
        return False


#: name -> what predicting it must give: "ok", "short", "silent", or the start of the error's cause
CASES = {
    "empty.wav": "no audio samples",
    "truncated.wav": "truncated",  # half of 4 s: classified from what decodes, with a warning
    "truncated.flac": "truncated",
    "header-only.wav": "corrupt or truncated audio",
    "zero-frames.wav": "no audio samples",
    "random-bytes.mp3": "not an audio file",
    "text.wav": "not an audio file",
    "dangling-link.wav": "file not found",
    "locked.wav": "permission denied",
    "nan-inf-float.wav": "ok",
    "8khz.wav": "ok",
    "192khz.wav": "ok",
    "8bit.wav": "ok",
    "24bit.wav": "ok",
    "32bit-float.wav": "ok",
    "6-channels.wav": "ok",
    "wav-named.mp3": "ok",
    "UPPER CASE.WAV": "ok",
    "ünïcödé名前 with  spaces ♫.flac": "ok",
    "reference-16bit.wav": "ok",
    "one-sample.wav": "short",
    "silence.wav": "silent",
}


def write_case(folder, name) -> None:
    path = folder / name
    reference = music(22050, 4.0)
    if name == "empty.wav":
        path.write_bytes(b"")
    elif name in ("truncated.wav", "header-only.wav"):
        sf.write(folder / "whole.tmp", reference, 22050, format="WAV")
        data = (folder / "whole.tmp").read_bytes()
        (folder / "whole.tmp").unlink()
        path.write_bytes(data[:44] if name == "header-only.wav" else data[: len(data) // 2])
    elif name == "truncated.flac":
        sf.write(folder / "whole.tmp", reference, 22050, format="FLAC")
        data = (folder / "whole.tmp").read_bytes()
        (folder / "whole.tmp").unlink()
        path.write_bytes(data[: len(data) // 2])
    elif name == "zero-frames.wav":
        sf.write(path, np.zeros(0, np.float32), 22050)
    elif name == "random-bytes.mp3":
        path.write_bytes(np.random.default_rng(0).bytes(20_000))  # seed 1 would start with an MPEG frame sync
    elif name == "text.wav":
        path.write_text("RIFF? no: just some text that claims to be a WAV file\n" * 40)
    elif name == "dangling-link.wav":
        os.symlink(folder / "no-such-target.wav", path)
    elif name == "locked.wav":
        sf.write(path, reference, 22050)
        path.chmod(0)
    elif name == "nan-inf-float.wav":
        damaged = reference.copy()
        damaged[1000:1100] = np.nan
        damaged[5000], damaged[6000] = np.inf, -np.inf
        sf.write(path, damaged, 22050, subtype="FLOAT")
    elif name == "8khz.wav":
        sf.write(path, music(8000, 4.0), 8000)
    elif name == "192khz.wav":
        sf.write(path, music(192000, 4.0), 192000)
    elif name == "8bit.wav":
        sf.write(path, reference, 22050, subtype="PCM_U8")
    elif name == "24bit.wav":
        sf.write(path, reference, 22050, subtype="PCM_24")
    elif name == "32bit-float.wav":
        sf.write(path, reference, 22050, subtype="FLOAT")
    elif name == "6-channels.wav":
        sf.write(path, music(48000, 4.0, channels=6), 48000)
    elif name == "wav-named.mp3":
        sf.write(path, reference, 22050, format="WAV")
    elif name in ("UPPER CASE.WAV", "reference-16bit.wav"):
        sf.write(path, reference, 22050, format="WAV", subtype="PCM_16")
    elif name.endswith(".flac"):
        sf.write(path, reference, 22050, format="FLAC")
    elif name == "one-sample.wav":
        sf.write(path, np.array([0.5], np.float32), 22050)
    elif name == "silence.wav":
        sf.write(path, np.zeros(4 * 22050, np.float32), 22050)
    else:  # pragma: no cover - a case without a writer is a bug in this file
        raise AssertionError(name)


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("model") / "tiny")


@pytest.fixture(scope="module")
def model(model_path):
    return load_model(model_path)


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    """A folder with every case, plus a symbolic-link loop and a hidden file."""
    folder = tmp_path_factory.mktemp("library")
    for name in CASES:
        write_case(folder, name)
    (folder / "sub").mkdir()
    os.symlink("..", folder / "sub" / "back-up")  # sub/back-up -> library: a loop
    sf.write(folder / ".hidden.wav", music(22050, 1.0), 22050)  # dot files are not music
    return folder


def expected_outcome(library, name) -> str:
    if name == "locked.wav" and reads_despite_chmod_000(library / name):
        return "ok"
    return CASES[name]


def check_record(record, expected, path) -> None:
    assert record["path"] == str(path)
    if expected == "truncated":
        assert "error" not in record and record["genre"] in GENRES, record
        assert any(w.startswith("truncated:") for w in record["warnings"]), record
        return
    if expected in ("ok", "short", "silent"):
        assert "error" not in record, record
        assert record["duration"] >= 0  # one sample rounds to 0.000 s
        if expected == "silent":
            assert record["genre"] is None and record["silent"] is True and record["top"] == []
            return
        assert record["genre"] in GENRES
        assert 0 < record["confidence"] <= 1
        assert record.get("short", False) is (expected == "short")
    else:
        assert set(record) == {"path", "error"}, record
        assert record["error"].startswith(f"{path}: {expected}"), record["error"]
        assert "\n" not in record["error"] and "Traceback" not in record["error"]


@pytest.mark.parametrize("name", sorted(CASES))
def test_each_file_gives_a_result_or_a_clear_error(model, library, name):
    if name == "locked.wav" and reads_despite_chmod_000(library / name):
        pytest.skip("running with permissions that ignore chmod 000 (root): the file stays readable")
    [record] = predict_files([library / name], model)
    check_record(record, CASES[name], library / name)
    json.dumps(record)


def by_name(records):
    return {os.path.basename(r["path"]): r for r in records}


def test_encodings_of_the_same_music_agree(model, library):
    records = by_name(predict_files([library / n for n in (
        "reference-16bit.wav", "24bit.wav", "32bit-float.wav", "8bit.wav", "nan-inf-float.wav",
        "UPPER CASE.WAV", "wav-named.mp3", "ünïcödé名前 with  spaces ♫.flac")], model))
    reference = records.pop("reference-16bit.wav")
    assert reference["duration"] == pytest.approx(4.0, abs=1e-3)
    # lossless copies of the same samples: the same answer to rounding
    for name in ("UPPER CASE.WAV", "wav-named.mp3", "ünïcödé名前 with  spaces ♫.flac"):
        assert records[name]["top"] == reference["top"], name
    # finer or coarser sample formats: 24-bit and float hold the 16-bit samples' values to within
    # 16-bit rounding; 8 bits add quantisation noise 48 dB down; NaN/inf become 100 zero samples
    for name, tolerance in (("24bit.wav", 1e-3), ("32bit-float.wav", 1e-3), ("8bit.wav", 0.05),
                            ("nan-inf-float.wav", 0.02)):
        assert records[name]["genre"] == reference["genre"], name
        assert records[name]["confidence"] == pytest.approx(reference["confidence"], abs=tolerance), name
        assert records[name]["duration"] == pytest.approx(4.0, abs=1e-3)


def test_unusual_rates_and_channels_keep_their_duration(model, library):
    records = by_name(predict_files([library / n for n in ("8khz.wav", "192khz.wav", "6-channels.wav")], model))
    for name, record in records.items():
        assert record["duration"] == pytest.approx(4.0, abs=1e-3), name
        assert np.isfinite(record["confidence"]), name


def test_symlink_loop_is_reported_once_and_the_walk_goes_on(model, library):
    records = list(predict_files([library], model))
    loops = [r for r in records if "symbolic link loop" in r.get("error", "")]
    assert [r["path"] for r in loops] == [str(library / "sub" / "back-up")]
    # every case file comes out exactly once (none twice through the loop), hidden files never
    assert sorted(os.path.basename(r["path"]) for r in records if r not in loops) == sorted(CASES)


@pytest.mark.parametrize("workers", [0, 2])
def test_mixed_folder_in_one_cli_run(model_path, library, workers):
    """The user's view: one run, one record per file, one stderr line per failure, exit code 1."""
    result = subprocess.run(
        [sys.executable, "-m", "genrekit", "predict", str(library), "--model", str(model_path),
         "--format", "jsonl", "--workers", str(workers)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    loop = str(library / "sub" / "back-up")
    assert sorted(r["path"] for r in records) == sorted([str(library / n) for n in CASES] + [loop])
    expected = {str(library / n): expected_outcome(library, n) for n in CASES}
    expected[loop] = "symbolic link loop"
    for record in records:
        check_record(record, expected[record["path"]], record["path"])
    failed = {r["path"] for r in records if "error" in r}
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert sorted(error_lines) == sorted(f"error: {r['error']}" for r in records if "error" in r)
    # stderr holds nothing else but the closing summary (no decoder chatter, no warnings)
    others = [line for line in result.stderr.splitlines() if not line.startswith("error: ")]
    assert len(others) == 1 and others[0].startswith(f"{len(records)} files in "), result.stderr
    assert f"{len(failed)} failed" in others[0]


PEAK_RSS_SCRIPT = """
import resource, subprocess, sys
done = subprocess.run(sys.argv[1:], capture_output=True, text=True)
sys.stderr.write(done.stderr)
print(done.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024, done.stdout.replace("\\n", " "))
"""


def peak_rss_of_predict(model_path, audio_path, *extra):
    """(exit code, peak resident memory in bytes, stdout) of ``genrekit predict`` in a fresh process."""
    command = [sys.executable, "-m", "genrekit", "predict", str(audio_path), "--model", str(model_path),
               "--format", "json", *extra]
    out = subprocess.run([sys.executable, "-c", PEAK_RSS_SCRIPT, *command],
                         capture_output=True, text=True, timeout=600, check=True).stdout
    code, peak, text = out.split(" ", 2)
    return int(code), int(peak), text


@pytest.mark.slow
def test_hour_long_file_in_bounded_memory(model_path, tmp_path):
    """One hour of audio streams through in windows: memory does not grow with the file.

    Decoded whole, the hour would take 230 MB at the model's 16 kHz (float32) before any
    segmentation copy; the bound below is well under that.
    """
    hour = tmp_path / "one hour.wav"
    rng = np.random.default_rng(0)
    with sf.SoundFile(hour, "w", SR, 1, subtype="PCM_16") as handle:
        minute = (0.05 * rng.standard_normal(60 * SR)).astype(np.float32)
        for _ in range(60):  # written block by block: the test itself stays small
            handle.write(minute)
    short = tmp_path / "short.wav"
    sf.write(short, music(SR, 4.0), SR)

    code, baseline, _ = peak_rss_of_predict(model_path, short)
    assert code == 0
    code, peak, text = peak_rss_of_predict(model_path, hour, "--segments")
    assert code == 0
    record = json.loads(text)
    assert record["duration"] == pytest.approx(3600.0, abs=1e-3)
    assert len(record["segments"]) == 1200 and record["genre"] in GENRES
    assert peak < 1 << 30, f"peak RSS {peak / 2**20:.0f} MiB"
    decoded_whole = 3600 * SR * 4
    assert peak - baseline < 0.5 * decoded_whole, (
        f"peak RSS {peak / 2**20:.0f} MiB vs {baseline / 2**20:.0f} MiB for a 4 s file")


def test_a_crashing_file_costs_only_itself():
    """A worker that dies takes its pool down; every other file is decoded again, the culprit named."""
    from decoder_crash import decode_or_die

    from genrekit.inference.batch import _DecoderPool

    names = ["a.wav", "b.wav", "poison.wav", "c.wav", "d.wav", "poison2.wav", "e.wav"]
    pool = _DecoderPool(decode_or_die, workers=2)
    try:
        jobs = [(name, pool.submit(name)) for name in names]
        results = [pool.resolve(name, job) for name, job in jobs]
        after = pool.resolve("f.wav", pool.submit("f.wav"))  # the pool still works afterwards
    finally:
        pool.close()
    assert [path for path, _ in results] == names
    assert [outcome for _, outcome in results] == [
        "a.wav", "b.wav", "poison.wav: the audio decoder crashed on this file", "c.wav", "d.wav",
        "poison2.wav: the audio decoder crashed on this file", "e.wav"]
    assert after == ("f.wav", "f.wav")

