"""Feature tables as training data: `genrekit train --dataset TABLE` on .npz and Parquet, track-level
(and artist-grouped) splits of rows, and the round trip to `genrekit evaluate --split test|valid`."""

import json

import numpy as np
import pytest

from genrekit.apps.cli import main
from genrekit.data.splits import split_tracks
from genrekit.data.tables import read_table, table_dataset, table_segments

LABELS = ["a", "b", "c"]
TAGGRAM = '{"name": "musicnn", "model": "MSD_musicnn", "layer": "taggram"}'
HEAD = '{"name": "mlp", "hidden": 16, "input_transform": "logit"}'
FAST = ["--arch", HEAD, "--epochs", "10", "--lr", "0.01", "--patience", "0", "--batch-size", "16"]


def _rows(n_tracks=30, rows=5, width=50, seed=0, prefix="song"):
    """Tracks of taggram-like rows (probabilities) peaked on a label-specific column."""
    rng = np.random.default_rng(seed)
    ids, ys, xs = [], [], []
    for t in range(n_tracks):
        y = t % len(LABELS)
        x = rng.uniform(0.01, 0.2, (rows, width))
        x[:, y] = rng.uniform(0.7, 0.99, rows)
        xs.append(x)
        ids += [f"{LABELS[y]}/{prefix}-{t:03d}.mp3"] * rows
        ys += [y] * rows
    return np.concatenate(xs).astype(np.float32), np.array(ys), np.array(ids)


def _cli(capsys, *args):
    code = None
    try:
        main([str(a) for a in args])
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def test_train_on_npz_table_then_evaluate_the_recorded_test_split(tmp_path, capsys):
    x, y, ids = _rows()
    np.savez(tmp_path / "t.npz", X=x, Y=np.array(LABELS)[y], IDS=ids)
    code, out, err = _cli(capsys, "train", "-d", tmp_path / "t.npz", "-o", tmp_path / "head", "--feature", TAGGRAM,
                          *FAST)
    assert code in (None, 0), err
    summary = json.loads(out)
    assert summary["test"]["track_accuracy"] >= 0.8 and summary["valid"]["track_accuracy"] >= 0.8
    spec = json.loads((tmp_path / "head.json").read_text())
    assert spec["feature"]["layer"] == "taggram" and spec["sample_rate"] == 16000  # musicnn's fixed rate
    assert spec["architecture"]["input_shape"] == [50] and spec["labels"] == LABELS
    assert spec["data_fingerprint"].startswith("sha256:") and spec["split"]["keys"] == {}
    record = spec["split"]
    assert sum(record["counts"].values()) == 30 and record["test"] and record["valid"]

    for side in ("test", "valid"):
        code, out, err = _cli(capsys, "evaluate", tmp_path / "head.json", tmp_path / "t.npz", "--split", side, "--json")
        assert code in (None, 0), err
        result = json.loads(out)
        assert result["split"] == side and result["metrics"]["n_tracks"] == len(record[side])
        assert sorted(p["track_id"].rsplit("/", 1)[1].removesuffix(".mp3") for p in result["predictions"]) == record[side]
        assert result["metrics"]["track_accuracy"] == summary[side]["track_accuracy"]
    # scoring the whole table includes the training tracks: refused
    code, _, err = _cli(capsys, "evaluate", tmp_path / "head.json", tmp_path / "t.npz", "--split", "all")
    assert code == 1 and "were used to train" in err


def test_train_on_parquet_table_whose_metadata_names_the_feature(tmp_path, capsys):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    x, y, ids = _rows(seed=1)
    table = pa.table({"track": ids, "label": y, "start": np.zeros(len(ids)), "end": np.full(len(ids), 3.0),
                      "feature": list(x)})
    meta = {b"genrekit": json.dumps({"feature": json.loads(TAGGRAM), "labels": LABELS}).encode()}
    pq.write_table(table.replace_schema_metadata(meta), tmp_path / "t.parquet")
    code, out, err = _cli(capsys, "train", "-d", tmp_path / "t.parquet", "-o", tmp_path / "head", *FAST)
    assert code in (None, 0), err
    spec = json.loads((tmp_path / "head.json").read_text())
    assert spec["feature"]["layer"] == "taggram" and spec["labels"] == LABELS  # integer labels named by metadata
    code, out, err = _cli(capsys, "evaluate", tmp_path / "head.json", tmp_path / "t.parquet", "--split", "test", "--json")
    assert code in (None, 0), err
    assert json.loads(out)["metrics"]["track_accuracy"] >= 0.8

    # the feature given must be the table's, and its width the rows'
    code, _, err = _cli(capsys, "train", "-d", tmp_path / "t.parquet", "-o", tmp_path / "h2", *FAST, "--feature",
                        '{"name": "musicnn", "model": "MSD_musicnn", "layer": "penultimate"}')
    assert code == 2 and "the table says its rows are" in err and "Traceback" not in err


def test_a_table_needs_a_feature_of_its_width(tmp_path, capsys):
    x, y, ids = _rows(n_tracks=9)
    np.savez(tmp_path / "t.npz", X=x, Y=np.array(LABELS)[y], IDS=ids)
    code, _, err = _cli(capsys, "train", "-d", tmp_path / "t.npz", "-o", tmp_path / "h", *FAST)
    assert code == 2 and "say which feature" in err
    code, _, err = _cli(capsys, "train", "-d", tmp_path / "t.npz", "-o", tmp_path / "h", *FAST, "--feature",
                        '{"name": "musicnn", "model": "MSD_musicnn", "layer": "penultimate"}')
    assert code == 2 and "rows have 50 values" in err and "[200]" in err


def test_an_all_table_model_has_no_test_side_to_evaluate(tmp_path, capsys):
    """A model that records no test tracks (the bundled default) cannot be scored on --split test."""
    x, y, ids = _rows(n_tracks=6)
    np.savez(tmp_path / "t.npz", X=x, Y=np.array(LABELS)[y], IDS=ids)
    from genrekit.experiments.taggram_head import HeadRecipe, fit_head
    from genrekit.models.files import save_model

    network = fit_head(x, y, 3, HeadRecipe(hidden=8, epochs=1), seed=0)
    spec = {"name": "t", "labels": LABELS, "sample_rate": 16000, "segment": {"window": 3.0, "hop": 3.0, "last": "pad"},
            "feature": json.loads(TAGGRAM), "architecture": network.spec, "split": {"train": ["other"]}}
    path = save_model(tmp_path / "m", spec, {f"network.{k}": v for k, v in network.state_dict().items()})
    code, _, err = _cli(capsys, "evaluate", path, tmp_path / "t.npz", "--split", "test")
    assert code == 1 and "records no test tracks" in err


@pytest.mark.parametrize("split", [{"method": "random"}, {"method": "kfold", "folds": 3, "fold": 1},
                                   {"method": "gtzan-artist"}])
def test_splits_never_put_rows_of_one_track_or_artist_on_two_sides(tmp_path, split):
    """GTZAN ids get artist groups: whole artists (so whole tracks, so all their rows) stay on one side."""
    rng = np.random.default_rng(0)
    genres = ["blues", "classical", "country", "disco", "reggae"]
    ids = [f"{g}/{g}.{n:05d}.au" for g in genres for n in range(0, 100, 3) for _ in range(4)]
    x = rng.uniform(0, 1, (len(ids), 5)).astype(np.float32)
    y = np.array([genres.index(i.split("/")[0]) for i in ids])
    np.savez(tmp_path / "g.npz", X=x, Y=np.array(genres)[y], IDS=np.array(ids))
    table = read_table(tmp_path / "g.npz")
    dataset = table_dataset(table)
    assert all(t.group for t in dataset.tracks) and dataset.tracks[0].track_id == "blues.00000"
    parts, record = split_tracks(dataset, split, seed=0)
    sides = [table_segments(table, part) for part in parts if part]
    seen_rows, seen_groups = [], []
    for side, part in zip(sides, [p for p in parts if p]):
        # each row is identified by its values; every row of a track comes along with it
        assert len(side) == 4 * len(part)
        seen_rows.append({row.tobytes() for row in side.inputs[0]})
        seen_groups.append({t.group for t in part})
    for i in range(len(sides)):
        for j in range(i + 1, len(sides)):
            assert not seen_rows[i] & seen_rows[j] and not seen_groups[i] & seen_groups[j]
    assert sum(map(len, seen_rows)) == sum(len(s) for s in sides)
    assert record["groups"] == "all" and record["train_groups"]


@pytest.mark.slow
def test_embed_train_evaluate_and_predict_audio_round_trip(tmp_path, capsys, gtzan_mini):
    """Extract once with `genrekit embed`, train a head on the Parquet table, score it on the table's
    recorded test side, and run the same model on audio: the head needs no change."""
    import shutil

    data = tmp_path / "clips"
    for genre in ("classical", "metal"):
        (data / genre).mkdir(parents=True)
        for clip in sorted((gtzan_mini / genre).glob("*.flac"))[:5]:
            shutil.copy(clip, data / genre / clip.name)
    feature = '{"name": "mfcc", "n_mfcc": 13, "hop_length": 2048}'
    code, _, err = _cli(capsys, "embed", data, "--labels", "folder", "--feature", feature, "-o", tmp_path / "t.parquet")
    assert code in (None, 0), err
    code, out, err = _cli(capsys, "train", "-d", tmp_path / "t.parquet", "-o", tmp_path / "head",
                          "--arch", '{"name": "mlp", "hidden": 16, "dropout": 0.0}', "--split", "random",
                          "--valid-size", "0.2", "--test-size", "0.2", "--epochs", "15", "--batch-size", "16",
                          "--no-cache")
    assert code in (None, 0), err
    spec = json.loads((tmp_path / "head.json").read_text())
    assert spec["feature"]["name"] == "mfcc" and spec["labels"] == ["classical", "metal"]
    code, out, err = _cli(capsys, "evaluate", tmp_path / "head.json", tmp_path / "t.parquet", "--split", "test", "--json")
    assert code in (None, 0), err
    assert json.loads(out)["metrics"]["n_tracks"] == len(spec["split"]["test"])
    clip = next((data / "metal").glob("*.flac"))
    code, out, err = _cli(capsys, "predict", clip, "-m", tmp_path / "head.json", "-f", "json")
    assert code in (None, 0), err
    assert json.loads(out)["genre"] in ("classical", "metal")
