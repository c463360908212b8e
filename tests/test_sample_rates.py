"""Sample rates outside what genrekit reads (issue 17, item 4): one GenrekitError / one error line,
quickly, for arrays and files alike, never a crash or minutes of resampling."""

import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from genrekit.audio.resample import MAX_SAMPLE_RATE, MIN_SAMPLE_RATE
from genrekit.errors import GenrekitError, UsageError


def test_predicting_an_array_at_one_hertz_is_a_usage_error_not_a_crash(tiny_model_file):
    # in a child process: on the code before the fix this killed Python with a segmentation fault
    script = (
        "import numpy as np\n"
        "from genrekit.errors import UsageError\n"
        "from genrekit.inference.model import load_model\n"
        f"model = load_model({str(tiny_model_file)!r})\n"
        "try:\n"
        "    model.predict(np.zeros(264600), sr=1)\n"
        "except UsageError as error:\n"
        "    print('refused:', error)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "refused: sr 1 Hz is outside" in result.stdout


@pytest.mark.parametrize("sr", [1, 100, MIN_SAMPLE_RATE - 1, MAX_SAMPLE_RATE + 1, 10**9])
def test_arrays_at_rates_out_of_range_are_refused(tiny_model_file, sr):
    from genrekit.inference.model import load_model

    with pytest.raises(UsageError, match=f"{MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz"):
        load_model(tiny_model_file).predict(np.zeros(3000, np.float32), sr=sr)


@pytest.mark.parametrize("sr", [MIN_SAMPLE_RATE, MAX_SAMPLE_RATE])
def test_the_bounds_themselves_are_accepted(tiny_model_file, sr):
    from genrekit.inference.model import load_model

    noise = np.random.default_rng(0).normal(0, 0.1, int(sr * 3.5)).astype(np.float32)
    assert load_model(tiny_model_file).predict(noise, sr=sr).genre is not None


def test_files_at_rates_out_of_range_are_one_error_line_each(tiny_model_file, tmp_path):
    one_hz = tmp_path / "one-hz.wav"
    sf.write(one_hz, np.random.default_rng(1).uniform(-0.5, 0.5, 264600).astype(np.float32), 1)
    too_fast = tmp_path / "too-fast.wav"
    sf.write(too_fast, np.zeros(20000, np.float32), 1_000_000)
    good = tmp_path / "good.wav"
    sf.write(good, np.random.default_rng(2).normal(0, 0.1, 22050 * 4).astype(np.float32), 22050)
    result = subprocess.run(
        [sys.executable, "-m", "genrekit", "predict", str(one_hz), str(too_fast), str(good),
         "--model", str(tiny_model_file), "--format", "jsonl"],
        capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 2 and all("Hz is outside the rates genrekit reads" in line for line in errors), result.stderr
    assert "Traceback" not in result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    assert [r["path"] for r in records if "genre" in r] == [str(good)]


def test_a_file_at_one_hertz_is_an_audio_error(tmp_path):
    from genrekit.audio.decode import load_audio

    path = tmp_path / "one-hz.wav"
    sf.write(path, np.zeros(1000, np.float32), 1)
    with pytest.raises(GenrekitError, match="sample rate 1 Hz"):
        load_audio(path)
