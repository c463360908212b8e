"""The library state database: validity of stored results, reuse, crash safety."""

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap

import pytest

from genrekit.apps.library.db import (
    LibraryDB,
    LibraryDBError,
    default_db_path,
    file_sha256,
)
from genrekit.apps.library.results import predict_with_cache

MODEL = "model-a"


def result_for(path, genre="jazz"):
    return {"path": str(path), "genre": genre, "confidence": 0.75,
            "top": [{"genre": genre, "probability": 0.75}], "duration": 30.0}


@pytest.fixture
def library(tmp_path):
    root = tmp_path / "Música"
    (root / "a b").mkdir(parents=True)
    for i, name in enumerate(["one.mp3", "a b/twö.flac", "three.ogg"]):
        (root / name).write_bytes(bytes([i]) * (1000 + i))
    return root


@pytest.fixture
def db(library):
    with LibraryDB(default_db_path(library)) as opened:
        yield opened


def touch(path, seconds_later=10):
    stat = os.stat(path)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + seconds_later * 10**9))


def test_stored_result_is_found_until_the_file_changes(library, db):
    path = library / "one.mp3"
    assert db.lookup(path, MODEL) is None
    db.store(path, MODEL, result_for(path))
    assert db.lookup(path, MODEL) == result_for(path)
    assert db.lookup(path, "model-b") is None
    assert db.entry(path, MODEL).sha256 == file_sha256(path)
    path.write_bytes(b"different audio" * 100)
    assert db.lookup(path, MODEL) is None


def test_touched_file_is_recognised_by_its_bytes(library, db):
    path = library / "one.mp3"
    db.store(path, MODEL, result_for(path))
    touch(path)
    assert db.lookup(path, MODEL) == result_for(path)
    assert db.entry(path, MODEL).mtime_ns == os.stat(path).st_mtime_ns  # re-keyed


def test_without_hashes_a_touched_file_is_recomputed(library):
    path = library / "one.mp3"
    with LibraryDB(library / "plain.sqlite", hash_files=False) as db:
        db.store(path, MODEL, result_for(path))
        assert db.entry(path, MODEL).sha256 is None
        touch(path)
        assert db.lookup(path, MODEL) is None


def test_renamed_file_reuses_its_result(library, db):
    old, new = library / "one.mp3", library / "a b" / "renamed.mp3"
    db.store(old, MODEL, result_for(old, "blues"))
    old.rename(new)
    found = db.lookup(new, MODEL)
    assert found["genre"] == "blues" and found["path"] == str(new)


def test_paths_are_relative_so_a_moved_library_keeps_its_state(library, db, tmp_path):
    path = library / "a b" / "twö.flac"
    db.store(path, MODEL, result_for(path))
    db.close()
    moved = tmp_path / "elsewhere" / "Music"
    shutil.copytree(library, moved)  # copy2 keeps the mtimes
    with LibraryDB(default_db_path(moved), hash_files=False) as reopened:
        assert reopened.lookup(moved / "a b" / "twö.flac", MODEL)["genre"] == "jazz"
        assert [e.path for e in reopened.entries()] == [moved / "a b" / "twö.flac"]


def test_errors_are_kept_but_retried(library, db):
    path = library / "three.ogg"
    db.store_error(path, MODEL, f"{path}: corrupt or truncated audio")
    entry = db.entry(path, MODEL)
    assert entry.status == "error" and "corrupt" in entry.error
    assert db.lookup(path, MODEL) is None
    db.store(path, MODEL, result_for(path))
    assert db.entry(path, MODEL).error is None and db.lookup(path, MODEL) is not None


def test_refresh_identity_keeps_only_results_that_were_valid(library, db):
    fresh, stale = library / "one.mp3", library / "three.ogg"
    for path in (fresh, stale):
        db.store(path, MODEL, result_for(path))
    stale.write_bytes(b"edited before tagging" * 50)  # its stored result is already stale
    for path in (fresh, stale):
        before = os.stat(path)
        path.write_bytes(path.read_bytes() + b"TAG")  # stands in for a tag write
        db.refresh_identity(path, before)
    assert db.lookup(fresh, MODEL) is not None
    assert db.lookup(stale, MODEL) is None


def test_predict_with_cache_computes_only_what_is_missing(library, db):
    paths = [library / "one.mp3", library / "a b" / "twö.flac", library / "three.ogg"]
    asked = []

    def predict(missing):
        asked.append([p.name for p in missing])
        for path in missing:
            yield {"path": str(path), "error": "cannot decode"} if path.suffix == ".ogg" else result_for(path)

    first = list(predict_with_cache(db, paths, MODEL, predict))
    assert asked == [["one.mp3", "twö.flac", "three.ogg"]]
    assert [r.get("error") for r in first] == [None, None, "cannot decode"]
    second = list(predict_with_cache(db, paths, MODEL, predict))
    assert asked[1] == ["three.ogg"]  # only the failed file is tried again
    assert sorted(r["path"] for r in second) == sorted(map(str, paths))
    list(predict_with_cache(db, paths, MODEL, predict, force=True))
    assert asked[2] == ["one.mp3", "twö.flac", "three.ogg"]
    list(predict_with_cache(db, paths, "model-b", predict))
    assert asked[3] == ["one.mp3", "twö.flac", "three.ogg"]


def test_not_a_database_is_a_clear_error(tmp_path):
    bogus = tmp_path / "library.sqlite"
    bogus.write_bytes(b"this is no sqlite file" * 100)
    with pytest.raises(LibraryDBError, match="library.sqlite: not a usable genrekit library database"):
        LibraryDB(bogus)


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "future.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA user_version = 99")
    with pytest.raises(LibraryDBError, match="newer genrekit"):
        LibraryDB(path)


WRITER = textwrap.dedent("""
    import sys
    from genrekit.apps.library.db import LibraryDB

    db = LibraryDB(sys.argv[1])
    audio = sys.argv[2]
    i = 0
    while True:
        result = {"path": audio, "genre": "rock", "confidence": 0.5, "top": [],
                  "duration": float(i), "padding": "x" * 2000}
        db.store(audio, f"model-{i}", result)
        print(i, flush=True)  # printed only after the commit returned
        i += 1
""")


def test_killed_writer_loses_no_committed_result_and_corrupts_nothing(tmp_path):
    db_path, audio = tmp_path / "state.sqlite", tmp_path / "song.flac"
    audio.write_bytes(b"fLaC" * 1000)
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    child = subprocess.Popen([sys.executable, str(script), str(db_path), str(audio)],
                             stdout=subprocess.PIPE, text=True)
    try:
        committed = -1
        for line in child.stdout:
            committed = int(line)
            if committed >= 200:
                break
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    assert committed >= 200
    assert (tmp_path / "state.sqlite-wal").exists()  # recovery from the write-ahead log is tested

    with LibraryDB(db_path) as db:
        assert db.integrity_check() == "ok"
        assert db._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        stored = db.entries()
        durations = {e.result["duration"] for e in stored}
        # every result the writer reported as committed is there, complete
        assert set(map(float, range(committed + 1))) <= durations
        assert all(e.status == "ok" and e.result["padding"] == "x" * 2000 for e in stored)
        assert db.lookup(audio, "model-0")["genre"] == "rock"
