"""What reaches the terminal when the output cannot be written or file names are hostile: one
clear line and a non-zero exit, never a traceback; a closed pipe ends quietly; control
characters in file names are escaped in human output (issue 13, item 10).
"""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from test_robustness import music, save_tiny_model

from genrekit.apps.library.genre_tags import TagChange, format_tag_table
from genrekit.utils import printable

HOSTILE_NAME = "evil\x1b[31mred\x1b[0m\nerror: fake line.wav"


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("model") / "tiny")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Thirty short clips: more output than one read takes, so a closed pipe is hit while writing."""
    root = tmp_path_factory.mktemp("clips")
    for i in range(30):
        sf.write(root / f"clip {i:02d}.wav", music(16000, 3.0, seed=i), 16000)
    return root


def genrekit(*args, stdout=subprocess.PIPE):
    return subprocess.run([sys.executable, "-m", "genrekit", *map(str, args)], stdout=stdout,
                          stderr=subprocess.PIPE, text=True, timeout=300)


def assert_one_error_line(stderr, *phrases):
    assert "Traceback" not in stderr and "Exception ignored" not in stderr, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    for phrase in phrases:
        assert phrase in lines[0], stderr


def test_output_to_an_existing_folder_is_one_clear_error(model_path, folder, tmp_path):
    result = genrekit("predict", folder / "clip 00.wav", "--model", model_path, "-o", tmp_path)
    assert result.returncode != 0
    assert_one_error_line(result.stderr, str(tmp_path), "folder")
    assert list(tmp_path.iterdir()) == []  # no temporary file left


def test_output_in_a_folder_that_cannot_be_written_is_one_clear_error(model_path, folder, tmp_path):
    target = tmp_path / "not-a-folder" / "out.json"
    (tmp_path / "not-a-folder").write_text("a file where a folder should be")
    result = genrekit("predict", folder / "clip 00.wav", "--model", model_path, "-o", target)
    assert result.returncode != 0
    assert_one_error_line(result.stderr, str(target))


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full here")
@pytest.mark.parametrize("fmt", ["table", "jsonl"])
def test_full_disk_on_stdout_is_one_clear_error(model_path, folder, fmt):
    with open("/dev/full", "w") as full:
        result = genrekit("predict", folder / "clip 00.wav", "--model", model_path, "-f", fmt, stdout=full)
    assert result.returncode != 0
    assert_one_error_line(result.stderr, "standard output", "No space left on device")


def run_into_closed_pipe(*args):
    """Read one line of ``genrekit`` output, close the pipe, and return (exit code, stderr)."""
    process = subprocess.Popen([sys.executable, "-m", "genrekit", *map(str, args)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    first = process.stdout.readline()
    process.stdout.close()
    err = process.stderr.read()
    process.wait(timeout=300)
    assert first.startswith('{"path"')
    return process.returncode, err


@pytest.mark.parametrize("debug", [False, True])
def test_closed_pipe_ends_quietly(model_path, folder, debug):
    options = ["--debug"] if debug else []
    code, err = run_into_closed_pipe(*options, "predict", folder, "--model", model_path, "-f", "jsonl",
                                     "--workers", "0", "--batch-size", "1")
    assert code != 0
    if debug:
        assert_one_error_line(err, "broken pipe")
    else:
        assert err == ""


def test_file_names_with_control_characters_are_escaped_in_human_output(model_path, tmp_path):
    (tmp_path / HOSTILE_NAME).write_bytes(np.random.default_rng(0).bytes(5000))  # fails: not audio
    sf.write(tmp_path / "fine.wav", music(16000, 3.0), 16000)
    result = genrekit("predict", tmp_path, "--model", model_path, "--workers", "0")
    assert result.returncode == 1
    for text in (result.stdout, result.stderr):
        assert "\x1b" not in text
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "evil\\x1b[31mred\\x1b[0m\\nerror: fake line.wav" in errors[0]
    assert len(result.stderr.strip().splitlines()) == 2  # the failure and the summary
    assert "evil\\x1b[31m" in result.stdout and "\nerror: fake line.wav" not in result.stdout


def test_tag_table_escapes_control_characters(tmp_path):
    change = TagChange(Path(tmp_path / HOSTILE_NAME), ["Ro\x1bck"], ["Jazz"], "failed", reason=f"{HOSTILE_NAME}: no")
    table = format_tag_table([change], tmp_path)
    assert "\x1b" not in table
    assert len(table.splitlines()) == 3  # header, row, reason


def test_printable_keeps_ordinary_text_and_escapes_the_rest():
    assert printable("Café — ñandú ♫ [1/2].flac") == "Café — ñandú ♫ [1/2].flac"
    assert printable("a\tb\rc\nd\x00e\x7f\x9b\u202e") == "a\\tb\\rc\\nd\\x00e\\x7f\\x9b\\u202e"
    assert printable(os.fsdecode(b"caf\xe9.wav")) == "caf\\xe9.wav"  # a Latin-1 name on a UTF-8 system
