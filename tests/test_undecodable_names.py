"""File names that are not UTF-8 (a Latin-1 0xE9 byte, as libraries copied from older systems
have): classified, stored in the library database, tagged and undone like any other file, and
every output stays valid in its format (each such byte written ``\\xe9``)."""

import csv
import io
import json
import os

import mutagen
import numpy as np
import pytest
import soundfile as sf

from genrekit.apps.cli.main import main

SR = 22050
NAME = os.fsdecode(b"caf\xe9.flac")  # what os.listdir gives: the byte as a lone surrogate
SHOWN = "caf\\xe9.flac"  # how outputs write it


def run(capsys, *argv):
    with pytest.raises(SystemExit) as stopped:
        main(list(map(str, argv)))
    out, err = capsys.readouterr()
    return stopped.value.code, out, err


def utf8(text: str) -> str:
    """``text`` as the bytes a reader gets would decode: fails on a lone surrogate (raw 0xE9)."""
    return text.encode("utf-8").decode("utf-8")


@pytest.fixture
def library(tmp_path):
    folder = tmp_path / "music"
    folder.mkdir()
    t = np.arange(int(4 * SR)) / SR
    for name, freq in ((NAME, 440), ("plain.flac", 880)):
        sf.write(os.fsencode(folder / name), (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), SR)
    assert b"caf\xe9.flac" in os.listdir(os.fsencode(folder))
    return folder


def test_predict_classifies_the_file_and_json_stays_utf8(capsys, library, tiny_model_file):
    code, out, err = run(capsys, "-q", "predict", library, "-m", tiny_model_file, "-f", "json")
    assert code == 0, err
    records = {os.path.basename(r["path"]): r for r in json.loads(utf8(out))}
    assert set(records) == {SHOWN, "plain.flac"}
    assert "error" not in records[SHOWN] and records[SHOWN]["genre"]


def test_predict_csv_stays_utf8(capsys, library, tiny_model_file):
    code, out, err = run(capsys, "-q", "predict", library, "-m", tiny_model_file, "-f", "csv")
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(utf8(out))))
    assert sorted(os.path.basename(row["path"]) for row in rows) == sorted([SHOWN, "plain.flac"])
    assert all(row["error"] == "" for row in rows)


def test_predict_with_db_stores_and_reuses_the_result(capsys, library, tiny_model_file, tmp_path):
    db = tmp_path / "state.sqlite"
    base = ["predict", library, "-m", tiny_model_file, "-f", "jsonl", "--db", db]
    code, first, err = run(capsys, *base)
    assert code == 0 and "2 classified" in err, err
    code, again, err = run(capsys, *base)
    assert code == 0 and "2 answered from" in err, err
    assert [json.loads(utf8(line)) for line in again.splitlines()] == [json.loads(line) for line in first.splitlines()]


def test_tag_dry_run_write_and_undo(capsys, library, tiny_model_file):
    target = os.fsencode(library / NAME)
    code, out, err = run(capsys, "tag", library, "-m", tiny_model_file, "--min-confidence", "0")
    assert code == 0 and SHOWN in out and "2 write" in err, err
    assert "genre" not in (mutagen.File(target).tags or {})
    code, out, err = run(capsys, "tag", library, "-m", tiny_model_file, "--min-confidence", "0", "--write")
    assert code == 0 and "2 written" in err, err
    assert mutagen.File(target)["genre"] and mutagen.File(target)["genre"][0]
    code, out, err = run(capsys, "tag", library, "--undo")
    assert code == 0 and "2 restored" in err, err
    assert "genre" not in (mutagen.File(target).tags or {})
    assert sorted(os.listdir(os.fsencode(library))) == [b".genrekit.sqlite", b"caf\xe9.flac", b"plain.flac"]


def test_embed_table_carries_the_name(capsys, library, tmp_path):
    import pyarrow.parquet as pq

    out = tmp_path / "table.parquet"
    code, _, err = run(capsys, "-q", "embed", library, "--feature", '{"name": "mfcc", "n_mfcc": 8}', "-o", out)
    assert code == 0, err
    table = pq.read_table(out)
    assert {os.path.basename(p) for p in table.column("path").to_pylist()} == {SHOWN, "plain.flac"}
    assert table.column("error").null_count == table.num_rows
