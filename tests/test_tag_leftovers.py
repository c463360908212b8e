"""Tag writes and undo leave nothing behind: stale hidden copies of killed writes are removed by
the next run, the undo hint can be followed as printed, and undo gives back the very bytes of
untagged files (issue 13, item 9).
"""

import os
import shlex
from pathlib import Path

import pytest
import soundfile as sf
import test_tagging
from test_tagging import LIBRARY, SR, run_tag, snapshot, tone

from genrekit.apps.library.db import default_db_path
from genrekit.apps.library.genre_tags import read_genres, write_genres

# the tagging tests' fixtures: a small library of every taggable format, a model for it
band_model = test_tagging.band_model
library = test_tagging.library
master_library = test_tagging.master_library


def stale_copy(folder, name, random_part="k3x_9qzt"):
    """A hidden copy as a ``tag --write`` killed between copy and rename leaves it."""
    path = folder / f".{os.path.splitext(name)[0]}.{random_part}.genrekit-tmp{os.path.splitext(name)[1]}"
    path.write_bytes((folder / name).read_bytes())
    return path


def test_stale_temp_files_of_a_killed_write_are_removed_by_the_next_run(library, band_model, capsys):
    stale = [stale_copy(library, "plain.wav"), stale_copy(library / "sub dir", "jazz.ogg", "abcdefgh")]
    lookalikes = [library / ".plain.genrekit-tmp.wav", library / "plain.k3x_9qzt.genrekit-tmp.txt",
                  library / ".notes.k3x_9qzt.genrekit-tmp.txt.bak"]
    for path in lookalikes:  # not genrekit's naming: left alone
        path.write_bytes(b"user data")
    code, _, _ = run_tag(capsys, library, "--write")
    assert code == 0
    assert not any(path.exists() for path in stale)
    assert all(path.read_bytes() == b"user data" for path in lookalikes)


def test_temp_file_in_use_by_another_writer_is_not_removed(library):
    """A copy still being written (its writer holds a lock on it) is not stale."""
    import fcntl

    from genrekit.apps.library.genre_tags import remove_stale_temp_files

    busy = stale_copy(library, "plain.wav")
    with open(busy, "rb") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        assert remove_stale_temp_files(library) == []
        assert busy.exists()
    assert remove_stale_temp_files(library) == [busy]
    assert not busy.exists()


def test_undo_hint_names_the_database_and_can_be_followed(library, band_model, capsys, tmp_path):
    db_path = tmp_path / "state" / "library.sqlite"
    db_path.parent.mkdir()  # output paths go into existing folders
    code, _, err = run_tag(capsys, library, "--db", db_path, "--write")
    assert code == 0
    hint = err.split("undo with: ", 1)[1].split(")")[0].strip()
    assert "--db" in hint and str(db_path) in hint
    words = shlex.split(hint)
    assert words[:2] == ["genrekit", "tag"]
    code, out, _ = run_tag(capsys, *words[2:])
    assert code == 0 and "restored" in out
    assert not default_db_path(library).exists()  # following the hint made no database beside the library


def test_no_undo_hint_when_every_write_failed(library, band_model, capsys):
    for name in LIBRARY:
        os.chmod(library / name, 0o444)
    code, out, err = run_tag(capsys, library, "--write", "--replace-existing", "--min-confidence", "0")
    assert code == 1 and "failed" in out
    assert "undo with" not in err


@pytest.mark.parametrize("suffix", [".wav", ".mp3", ".aiff"])
def test_undo_of_an_untagged_file_gives_back_its_exact_bytes(tmp_path, suffix):
    path = tmp_path / f"untagged{suffix}"
    if suffix == ".mp3":
        sf.write(path, tone(200.0), SR, format="MP3", subtype="MPEG_LAYER_III")
    else:
        sf.write(path, tone(200.0), SR)
    original = path.read_bytes()
    write_genres(path, ["Jazz"])
    assert read_genres(path) == ["Jazz"] and path.read_bytes() != original
    write_genres(path, None, expected=["Jazz"])  # what undo does for a file that had no genre
    assert path.read_bytes() == original


def test_cli_undo_of_untagged_files_is_byte_exact(library, band_model, capsys):
    before = snapshot(library)
    code, _, _ = run_tag(capsys, library, "--write", "--min-confidence", "0")
    assert code == 0
    assert snapshot(library)[Path("plain.wav")] != before[Path("plain.wav")]
    code, out, _ = run_tag(capsys, library, "--undo")
    assert code == 0 and "restored" in out
    # plain.wav had no tags at all: it gets back its exact bytes, not an empty ID3 chunk
    assert snapshot(library)[Path("plain.wav")] == before[Path("plain.wav")]
