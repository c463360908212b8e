"""Output paths (``-o``, ``--out``, ``--db``, plots, feature tables): a regular or new file is
replaced atomically; a FIFO, a device and a symbolic link are written through as a shell's ``>``
would; a missing folder, a folder, a read-only file is one error line and leaves everything as
it was. FIFOs and device nodes are made in a temporary folder, never the system's /dev/null."""

import json
import os
import stat
import threading

import numpy as np
import pytest
import soundfile as sf

from genrekit.apps.cli.main import main
from genrekit.errors import GenrekitError
from genrekit.utils import atomic_write, atomic_write_text

SR = 22050


def run(capsys, *argv):
    with pytest.raises(SystemExit) as stopped:
        main(list(map(str, argv)))
    out, err = capsys.readouterr()
    return stopped.value.code, out, err


class FifoReader:
    """Reads a FIFO in a thread (a writer's open blocks until a reader comes)."""

    def __init__(self, path):
        self.data = b""
        self.thread = threading.Thread(target=self._read, args=(path,), daemon=True)
        self.thread.start()

    def _read(self, path):
        with open(path, "rb") as handle:
            self.data = handle.read()

    def result(self) -> bytes:
        self.thread.join(timeout=60)
        return self.data


@pytest.fixture
def fifo(tmp_path):
    path = tmp_path / "results.fifo"
    os.mkfifo(path)
    return path


@pytest.fixture
def null_device(tmp_path):
    """A character device like /dev/null (1, 3), made in the temporary folder (needs root)."""
    path = tmp_path / "null"
    try:
        os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("mknod needs root")
    return path


@pytest.fixture
def song(tmp_path):
    t = np.arange(int(4 * SR)) / SR
    path = tmp_path / "song.wav"
    sf.write(path, (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), SR)
    return path


def test_fifo_is_written_through_and_stays_a_fifo(fifo):
    reader = FifoReader(fifo)
    atomic_write_text(fifo, "hello\n")
    assert reader.result() == b"hello\n"
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert os.listdir(fifo.parent) == [fifo.name]  # no temporary file left beside it


def test_device_stays_a_device(null_device):
    atomic_write_text(null_device, "gone\n")
    assert stat.S_ISCHR(os.lstat(null_device).st_mode)
    assert os.stat(null_device).st_rdev == os.makedev(1, 3)


def test_symlink_is_followed_and_kept(tmp_path):
    target = tmp_path / "real.json"
    target.write_text("old\n")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    atomic_write_text(link, "new\n")
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert target.read_text() == "new\n"


def test_dangling_symlink_creates_its_target(tmp_path):
    link = tmp_path / "link.json"
    link.symlink_to(tmp_path / "made.json")
    atomic_write_text(link, "new\n")
    assert link.is_symlink() and (tmp_path / "made.json").read_text() == "new\n"


def test_regular_file_replaced_atomically_keeps_its_mode(tmp_path):
    path = tmp_path / "out.json"
    path.write_text("old\n")
    path.chmod(0o640)
    with pytest.raises(RuntimeError), atomic_write(path, "w") as handle:
        handle.write("half")
        raise RuntimeError("crash while writing")
    assert path.read_text() == "old\n" and os.listdir(tmp_path) == ["out.json"]
    atomic_write_text(path, "new\n")
    assert path.read_text() == "new\n" and stat.S_IMODE(path.stat().st_mode) == 0o640


def test_read_only_file_is_refused_also_for_root(tmp_path):
    path = tmp_path / "keep.json"
    path.write_text("precious\n")
    path.chmod(0o444)
    with pytest.raises(GenrekitError, match="read-only"):
        atomic_write_text(path, "new\n")
    assert path.read_text() == "precious\n"


def test_missing_folder_is_an_error_and_is_not_created(tmp_path):
    with pytest.raises(GenrekitError, match="does not exist"):
        atomic_write_text(tmp_path / "missing" / "dir" / "x.json", "{}")
    assert not (tmp_path / "missing").exists()
    atomic_write_text(tmp_path / "made" / "x.json", "{}", parents=True)  # genrekit's own trees
    assert (tmp_path / "made" / "x.json").read_text() == "{}"


def test_folder_is_an_error(tmp_path):
    with pytest.raises(GenrekitError, match="is a folder"):
        atomic_write_text(tmp_path, "{}")


# --- the command line --------------------------------------------------------------------------

def test_predict_output_to_a_fifo(capsys, song, fifo, tiny_model_file):
    reader = FifoReader(fifo)
    code, _, err = run(capsys, "-q", "predict", song, "--model", tiny_model_file, "-f", "json", "-o", fifo)
    assert code == 0, err
    assert json.loads(reader.result())["path"] == str(song)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_predict_output_to_a_device(capsys, song, null_device, tiny_model_file):
    code, _, err = run(capsys, "-q", "predict", song, "--model", tiny_model_file, "-o", null_device)
    assert code == 0, err
    assert stat.S_ISCHR(os.lstat(null_device).st_mode)


def test_predict_output_through_a_symlink(capsys, song, tmp_path, tiny_model_file):
    target = tmp_path / "real.jsonl"
    target.write_text("old\n")
    link = tmp_path / "link.jsonl"
    link.symlink_to(target)
    code, _, err = run(capsys, "-q", "predict", song, "--model", tiny_model_file, "-f", "jsonl", "-o", link)
    assert code == 0, err
    assert link.is_symlink() and json.loads(target.read_text())["path"] == str(song)


@pytest.mark.parametrize("case", ["missing folder", "read-only file"])
def test_predict_output_errors_are_one_line(capsys, song, tmp_path, tiny_model_file, case):
    if case == "missing folder":
        output, expected = tmp_path / "missing" / "dir" / "x.json", "does not exist"
    else:
        output, expected = tmp_path / "keep.json", "read-only"
        output.write_text("precious\n")
        output.chmod(0o444)
    code, out, err = run(capsys, "-q", "predict", song, "--model", tiny_model_file, "-o", output)
    assert code in (1, 2)
    assert err.count("\n") == 1 and err.startswith("error: ") and expected in err, err
    assert "Traceback" not in err
    assert not (tmp_path / "missing").exists()
    if case == "read-only file":
        assert output.read_text() == "precious\n"


def test_embed_output_to_a_fifo_and_a_missing_folder(capsys, song, tmp_path, fifo):
    import io

    import pyarrow.parquet as pq

    reader = FifoReader(fifo)
    feature = '{"name": "mfcc", "n_mfcc": 8}'
    code, _, err = run(capsys, "-q", "embed", song, "--feature", feature, "-o", fifo)
    assert code == 0, err
    assert pq.read_table(io.BytesIO(reader.result())).num_rows > 0
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    code, _, err = run(capsys, "-q", "embed", song, "--feature", feature, "-o", tmp_path / "no" / "t.parquet")
    assert code in (1, 2) and "does not exist" in err and err.count("\n") == 1
    assert not (tmp_path / "no").exists()


def test_plot_to_a_device_and_to_a_missing_folder(capsys, song, tmp_path, null_device):
    code, _, err = run(capsys, "-q", "plot", song, "--no-tags", "--duration", "2", "-o", null_device)
    assert code == 0, err
    assert stat.S_ISCHR(os.lstat(null_device).st_mode)
    code, _, err = run(capsys, "-q", "plot", song, "--no-tags", "-o", tmp_path / "no" / "plot.png")
    assert code in (1, 2) and "does not exist" in err and err.count("\n") == 1
    assert not (tmp_path / "no").exists()


@pytest.mark.parametrize("case", ["fifo", "missing folder"])
def test_tag_database_must_be_a_regular_file_in_an_existing_folder(capsys, song, tmp_path, fifo, case):
    db = fifo if case == "fifo" else tmp_path / "no" / "lib.sqlite"
    code, _, err = run(capsys, "-q", "tag", song, "--db", db)
    assert code in (1, 2) and err.count("\n") == 1, err
    assert ("not a regular file" if case == "fifo" else "does not exist") in err
    assert not (tmp_path / "no").exists()
    if case == "fifo":
        assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_train_refuses_a_read_only_model_file_before_training(capsys, tmp_path):
    from tones import TINY_CNN, TINY_FEATURE, make_tone_dataset

    data = make_tone_dataset(tmp_path / "tones", tracks_per_genre=2, seconds=1.0)
    (tmp_path / "model.json").write_text("precious\n")
    (tmp_path / "model.json").chmod(0o444)
    code, _, err = run(capsys, "-q", "train", "--dataset", data, "--out", tmp_path / "model",
                       "--feature", json.dumps(TINY_FEATURE), "--arch", json.dumps(TINY_CNN), "--epochs", "1")
    assert code == 1 and err.startswith("error: ") and "read-only" in err and err.count("\n") == 1, err
    assert (tmp_path / "model.json").read_text() == "precious\n"
    assert not (tmp_path / "model.safetensors").exists()


def test_dev_stdout_appended_to_a_file_keeps_what_was_there(song, tmp_path, tiny_model_file):
    """``genrekit predict ... -o /dev/stdout >> log.jsonl`` (here /proc/self/fd/1, the same file but
    no system file if this went wrong): the shell's file is written through, not replaced."""
    import subprocess
    import sys
    from pathlib import Path

    log = tmp_path / "log.jsonl"
    log.write_text('{"earlier": true}\n')
    src = str(Path(__file__).resolve().parents[1] / "src")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")]))}
    with open(log, "a") as appended:
        done = subprocess.run([sys.executable, "-m", "genrekit", "-q", "predict", str(song), "-m", str(tiny_model_file),
                               "-f", "jsonl", "-o", "/proc/self/fd/1"], stdout=appended, stderr=subprocess.PIPE,
                              text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    lines = log.read_text().splitlines()
    assert json.loads(lines[0]) == {"earlier": True} and json.loads(lines[1])["path"] == str(song)
    assert stat.S_ISREG(os.lstat(log).st_mode)
