import csv
import io
import json

import numpy as np
import pytest

from genrekit.errors import UsageError
from genrekit.inference.aggregate import aggregate_probabilities
from genrekit.inference.writers import write_records


def test_mean_aggregation_is_weighted_mean():
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.2, 0.8]])
    assert aggregate_probabilities(probs, "mean") == pytest.approx([13 / 30, 17 / 30])
    # a mostly padded last segment counts less
    weighted = aggregate_probabilities(probs, "mean", weights=np.array([1.0, 1.0, 0.1]))
    assert weighted == pytest.approx((probs * [[1.0], [1.0], [0.1]]).sum(0) / 2.1)


def test_vote_differs_from_mean_when_one_segment_is_very_sure():
    probs = np.array([[0.99, 0.01], [0.4, 0.6], [0.4, 0.6]])
    assert aggregate_probabilities(probs, "mean").argmax() == 0
    votes = aggregate_probabilities(probs, "vote")
    assert votes.argmax() == 1
    assert votes.sum() == pytest.approx(1.0)
    assert votes == pytest.approx([1 / 3, 2 / 3], abs=1e-6)


def test_vote_tie_broken_by_mean_probability():
    probs = np.array([[0.9, 0.1], [0.45, 0.55]])
    assert aggregate_probabilities(probs, "vote").argmax() == 0


def test_aggregation_rejects_bad_input():
    with pytest.raises(ValueError):
        aggregate_probabilities(np.zeros((0, 3)))
    with pytest.raises(UsageError, match="'mean' or 'vote'"):
        aggregate_probabilities(np.ones((2, 3)) / 3, "median")


RECORDS = [
    {"path": "a.mp3", "genre": "jazz", "confidence": 0.7, "uncertain": False, "duration": 30.0,
     "top": [{"genre": "jazz", "probability": 0.7}, {"genre": "blues", "probability": 0.2}]},
    {"path": "bad.mp3", "error": "bad.mp3: not an audio file"},
]


def test_json_single_object_and_array():
    one = io.StringIO()
    write_records(RECORDS[:1], "json", one)
    assert json.loads(one.getvalue()) == RECORDS[0]
    many = io.StringIO()
    assert write_records(RECORDS, "json", many) == (1, 1)
    assert json.loads(many.getvalue()) == RECORDS


def test_jsonl_and_csv():
    lines = io.StringIO()
    write_records(RECORDS, "jsonl", lines)
    assert [json.loads(line) for line in lines.getvalue().splitlines()] == RECORDS
    table = io.StringIO()
    write_records(RECORDS, "csv", table, top_k=2)
    rows = list(csv.DictReader(io.StringIO(table.getvalue())))
    assert rows[0]["genre"] == "jazz" and rows[0]["top2_genre"] == "blues"
    assert rows[1]["error"].startswith("bad.mp3")


def test_table_mentions_genre_and_error():
    out = io.StringIO()
    write_records(RECORDS, "table", out)
    text = out.getvalue()
    assert "genre: jazz" in text and "70.0%" in text
    assert "error: bad.mp3: not an audio file" in text


def test_atomic_write_keeps_usual_permissions(tmp_path):
    import os
    import stat

    from genrekit.utils import atomic_write_text

    fresh = tmp_path / "fresh.txt"
    atomic_write_text(fresh, "a")
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o666 & ~umask
    existing = tmp_path / "existing.txt"
    existing.write_text("old")
    existing.chmod(0o640)
    atomic_write_text(existing, "new")
    assert existing.read_text() == "new" and stat.S_IMODE(existing.stat().st_mode) == 0o640
