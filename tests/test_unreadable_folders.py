"""A folder that cannot be read is reported, never skipped in silence (issue 13, item 6).

The tests run as root here, where chmod 000 does not stop reading, so the failure is made by
``os.scandir`` (what ``os.walk`` lists folders with) raising PermissionError for one folder: the
same error ``os.walk`` passes to ``onerror`` for a mode-000 folder as a normal user.
"""

import json
import os

import numpy as np
import pytest
import soundfile as sf

from genrekit.apps.cli.main import main
from genrekit.inference.batch import collect_audio_files

SR = 22050


@pytest.fixture
def folder_with_locked_sub(tmp_path, monkeypatch):
    folder = tmp_path / "music"
    (folder / "locked").mkdir(parents=True)
    t = np.arange(SR) / SR
    sf.write(folder / "a.wav", (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), SR)
    sf.write(folder / "locked" / "b.wav", (0.3 * np.sin(2 * np.pi * 880 * t)).astype(np.float32), SR)
    real_scandir = os.scandir
    locked = str(folder / "locked")

    def scandir(path="."):
        if os.fspath(path) == locked:
            raise PermissionError(13, "Permission denied", locked)
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    return folder


def test_unreadable_folder_is_listed_as_a_problem(folder_with_locked_sub):
    found = list(collect_audio_files([folder_with_locked_sub]))
    assert (str(folder_with_locked_sub / "a.wav"), None) in found
    problems = [(path, problem) for path, problem in found if problem]
    assert problems == [(str(folder_with_locked_sub / "locked"), "cannot read folder (Permission denied)")]


def test_unreadable_folder_is_an_error_record_and_exit_1(folder_with_locked_sub, tiny_model_file, capsys):
    with pytest.raises(SystemExit) as stopped:
        main(["predict", str(folder_with_locked_sub), "--model", str(tiny_model_file), "-f", "jsonl"])
    out, _ = capsys.readouterr()
    records = [json.loads(line) for line in out.splitlines()]
    assert stopped.value.code == 1
    errors = [r for r in records if "error" in r]
    assert [r["path"] for r in errors] == [str(folder_with_locked_sub / "locked")]
    assert "cannot read folder" in errors[0]["error"]
    assert any(r.get("genre") for r in records)
