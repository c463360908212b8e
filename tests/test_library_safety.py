"""The library database and tag writes facing damage: a damaged or foreign database is refused
before anything is touched, killed writes leave no hidden copies behind, the undo hint can be
followed as printed, and undo gives back the very bytes of untagged files (issue 13, items 3, 9).
"""

import sqlite3

import numpy as np
import pytest
import test_tagging
from test_tagging import run_tag, snapshot

from genrekit.apps.cli.main import main
from genrekit.apps.library.db import LibraryDB, LibraryDBError, default_db_path

# the tagging tests' fixtures: a small library of every taggable format, a model for it
band_model = test_tagging.band_model
library = test_tagging.library
master_library = test_tagging.master_library


def database_bytes(path):
    return {p.name: p.read_bytes() for p in sorted(path.parent.iterdir()) if p.name.startswith(path.name)}


def damage_table(db_path, table):
    """Overwrite the root page of ``table`` with junk, as a failing disk or a bad copy would."""
    with sqlite3.connect(db_path) as conn:
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (table,)).fetchone()[0]
    conn.close()
    with open(db_path, "r+b") as handle:
        handle.seek((root - 1) * page_size + 8)
        handle.write(np.random.default_rng(0).bytes(page_size - 8))


def one_error_line(err):
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize("command", ["undo", "tag", "predict"])
def test_damaged_database_fails_in_one_line_before_touching_anything(library, band_model, capsys, command):
    code, _, _ = run_tag(capsys, library, "--write", "--min-confidence", "0")
    assert code == 0
    db_path = default_db_path(library)
    damage_table(db_path, "tag_changes" if command == "undo" else "files")
    before, db_before = snapshot(library), database_bytes(db_path)

    args = {"undo": ["tag", library, "--undo"], "tag": ["tag", library, "--write", "--replace-existing"],
            "predict": ["predict", library, "--db", db_path, "--format", "jsonl", "--workers", "0"]}[command]
    with pytest.raises(SystemExit) as exit_info:
        main([str(arg) for arg in args])
    out, err = capsys.readouterr()
    assert exit_info.value.code == 1
    assert "damaged" in one_error_line(err)
    assert out == ""
    assert snapshot(library) == before  # no file restored or tagged
    assert database_bytes(db_path) == db_before


def foreign_database(path):
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE songs (title TEXT, artist TEXT)")
        conn.execute("INSERT INTO songs VALUES ('So What', 'Miles Davis')")
    conn.close()
    return database_bytes(path)


@pytest.mark.parametrize("command", ["tag", "predict"])
def test_foreign_sqlite_file_is_refused_and_left_byte_identical(library, band_model, capsys, tmp_path, command):
    db_path = tmp_path / "music-player.db"
    db_before = foreign_database(db_path)
    args = ["tag", library, "--db", db_path] if command == "tag" else ["predict", library, "--db", db_path]
    with pytest.raises(SystemExit) as exit_info:
        main([str(arg) for arg in args])
    _, err = capsys.readouterr()
    assert exit_info.value.code == 1
    assert "not a genrekit library database" in one_error_line(err)
    assert database_bytes(db_path) == db_before  # not switched to WAL, no tables added
    assert band_model == []  # refused before any work


def test_foreign_database_with_a_user_version_is_refused_too(tmp_path):
    db_path = tmp_path / "other.db"
    foreign_database(db_path)
    with sqlite3.connect(db_path) as conn:
        conn.execute("PRAGMA user_version = 7")
    conn.close()
    db_before = database_bytes(db_path)
    with pytest.raises(LibraryDBError, match="not a genrekit library database"):
        LibraryDB(db_path)
    assert database_bytes(db_path) == db_before


def test_empty_file_and_genrekit_database_are_still_accepted(tmp_path):
    empty = tmp_path / "empty.sqlite"
    empty.write_bytes(b"")
    with LibraryDB(empty) as db:
        assert db.integrity_check() == "ok"
    with LibraryDB(empty) as db:  # and reopened
        assert db.entries() == []
