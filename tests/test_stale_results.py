"""Stale results are impossible (issue 13, item 4): the model id is a content digest, and a file
replaced by another of the same size with its mtime restored is not answered from the database."""

import os
import sqlite3
from dataclasses import replace

import torch

from genrekit.apps.library.db import LibraryDB
from genrekit.data.identity import file_fingerprint
from genrekit.inference.model import load_model


def test_model_id_is_a_digest_of_weights_labels_and_calibration(tiny_model_file):
    first, again = load_model(tiny_model_file), load_model(tiny_model_file)
    assert first.model_id == again.model_id
    assert first.model_id.startswith("tiny-test@sha256:")
    # same name and creation time, different weights
    other = load_model(tiny_model_file)
    with torch.no_grad():
        next(other.network.parameters()).add_(0.01)
    assert other.spec.created == first.spec.created
    assert other.model_id != first.model_id
    relabelled = load_model(tiny_model_file)
    relabelled.spec = replace(relabelled.spec, labels=tuple(reversed(relabelled.spec.labels)))
    assert relabelled.model_id != first.model_id
    recalibrated = load_model(tiny_model_file)
    recalibrated.spec = replace(recalibrated.spec, calibration={"temperature": 2.0})
    assert recalibrated.model_id != first.model_id


def _replace_keeping_size_and_mtime(path, data):
    stat = os.stat(path)
    assert len(data) == stat.st_size
    path.write_bytes(data)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert (os.stat(path).st_size, os.stat(path).st_mtime_ns) == (stat.st_size, stat.st_mtime_ns)


def test_same_size_same_mtime_replacement_is_not_answered_from_the_db(tmp_path):
    path = tmp_path / "song.flac"
    path.write_bytes(b"A" * 300_000)
    with LibraryDB(tmp_path / "lib.sqlite") as db:
        db.store(path, "m", {"path": str(path), "genre": "jazz", "confidence": 0.9})
        assert db.lookup(path, "m") is not None
        # another recording: differs in its last block only (where FLAC/MP3 audio ends)
        _replace_keeping_size_and_mtime(path, b"A" * 299_000 + b"B" * 1000)
        assert db.lookup(path, "m") is None


def test_fingerprint_reads_both_ends_only(tmp_path):
    path = tmp_path / "x.bin"
    path.write_bytes(b"\0" * 1_000_000)
    before = file_fingerprint(path, sampled=True)
    data = bytearray(path.read_bytes())
    data[500_000] = 1  # the middle is not read: the full SHA-256 covers it when size/mtime change
    path.write_bytes(bytes(data))
    assert file_fingerprint(path, sampled=True) == before
    data[0] = 1
    path.write_bytes(bytes(data))
    assert file_fingerprint(path, sampled=True) != before
    assert file_fingerprint(path, sampled=True).startswith("1000000:")


def test_schema_1_database_is_upgraded_and_rechecked_by_content(tmp_path):
    path = tmp_path / "song.flac"
    path.write_bytes(b"A" * 5000)
    db_path = tmp_path / "old.sqlite"
    with LibraryDB(db_path) as db:
        db.store(path, "m", {"path": str(path), "genre": "jazz", "confidence": 0.9})
    # make it look like a schema-1 database: no fingerprint column
    conn = sqlite3.connect(db_path)
    conn.executescript("ALTER TABLE files DROP COLUMN fingerprint; PRAGMA user_version=1;")
    conn.close()
    with LibraryDB(db_path) as db:
        assert db.lookup(path, "m")["genre"] == "jazz"  # same bytes: reused via the SHA-256
        assert db.entry(path, "m").fingerprint == file_fingerprint(path, sampled=True)
