"""Feature tables as datasets: `genrekit evaluate MODEL TABLE --split all` on .npz and Parquet."""

import json

import numpy as np
import pytest
import torch

from genrekit.apps.cli import main
from genrekit.data.tables import bare_track_id, gtzan_groups, read_table
from genrekit.errors import DatasetError
from genrekit.experiments.taggram_head import HeadRecipe, fit_head
from genrekit.models.files import save_model

LABELS = ["a", "b", "c"]


def _rows(rng, n_tracks, rows=6, width=8):
    """Tracks whose rows are probabilities peaked on a label-specific feature."""
    ids, ys, xs = [], [], []
    for t in range(n_tracks):
        y = t % len(LABELS)
        x = rng.uniform(0.01, 0.2, (rows, width))
        x[:, y] = rng.uniform(0.7, 0.99, rows)
        xs.append(x)
        ids.extend([f"g/track.{t:05d}.au"] * rows)
        ys.extend([y] * rows)
    return np.concatenate(xs).astype(np.float32), np.array(ys), np.array(ids)


@pytest.fixture
def table_model(tmp_path):
    rng = np.random.default_rng(0)
    x, y, ids = _rows(rng, 12)
    network = fit_head(x, y, len(LABELS), HeadRecipe(hidden=16, epochs=20, batch_size=16), seed=0)
    spec = {"name": "table-test", "labels": LABELS, "sample_rate": 16000,
            "segment": {"window": 3.0, "hop": 3.0, "last": "pad"},
            "feature": {"name": "musicnn", "model": "MSD_musicnn", "layer": "taggram"},
            "architecture": network.spec, "split": {"train": sorted(set(ids.tolist()))}}
    path = save_model(tmp_path / "head", spec, {f"network.{k}": v for k, v in network.state_dict().items()})
    x2, y2, ids2 = _rows(rng, 9)
    ids2 = np.char.replace(ids2, "track", "held")
    return path, (x2, y2, ids2), ids


def _evaluate(capsys, *args):
    code = None
    try:
        main(["evaluate", *map(str, args)])
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def test_npz_table_with_class_indices_or_names(table_model, tmp_path, capsys):
    path, (x, y, ids), _ = table_model
    np.savez(tmp_path / "t.npz", X=x, Y=y, IDS=ids)
    np.savez(tmp_path / "names.npz", X=x, Y=np.array(LABELS)[y], IDS=ids)
    for table in ("t.npz", "names.npz"):
        code, out, err = _evaluate(capsys, path, tmp_path / table, "--split", "all", "--json")
        assert code in (None, 0), err
        result = json.loads(out)
        assert result["metrics"]["n_tracks"] == 9 and result["metrics"]["track_accuracy"] == 1.0
        assert {"track_macro_f1", "tracks"} <= set(result["metrics"]) and result["split"] == "all"


def test_parquet_table_round_trip(table_model, tmp_path, capsys):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    path, (x, y, ids), _ = table_model
    pq.write_table(pa.table({"track": ids, "label": np.array(LABELS)[y], "start": np.zeros(len(ids)),
                             "end": np.full(len(ids), 3.0), "feature": list(x)}), tmp_path / "t.parquet")
    table = read_table(tmp_path / "t.parquet")
    assert table.labels == [LABELS[v] for v in y[::6]] and table.features.shape == x.shape
    code, out, _ = _evaluate(capsys, path, tmp_path / "t.parquet", "--split", "all", "--json")
    assert json.loads(out)["metrics"]["track_accuracy"] == 1.0


def test_training_tracks_and_wrong_width_are_refused(table_model, tmp_path, capsys):
    path, (x, y, ids), train_ids = table_model
    np.savez(tmp_path / "train.npz", X=x, Y=y, IDS=train_ids[: len(x)])
    code, _, err = _evaluate(capsys, path, tmp_path / "train.npz", "--split", "all")
    assert code == 1 and "were used to train" in err and "Traceback" not in err
    np.savez(tmp_path / "wide.npz", X=np.hstack([x, x]), Y=y, IDS=ids)
    code, _, err = _evaluate(capsys, path, tmp_path / "wide.npz", "--split", "all")
    assert code == 1 and "16 features" in err


def test_rows_of_a_track_must_be_consecutive(tmp_path):
    np.savez(tmp_path / "t.npz", X=np.zeros((3, 2)), Y=np.array([0, 0, 0]), IDS=np.array(["a", "b", "a"]))
    with pytest.raises(DatasetError, match="consecutive"):
        read_table(tmp_path / "t.npz", ["x"])


def test_gtzan_ids_map_to_artists():
    assert bare_track_id("blues/blues.00012.au") == "blues.00012"
    groups = gtzan_groups(["blues/blues.00000.au", "blues/blues.00001.au", "jazz/jazz.00050.au"])
    assert groups[0] == groups[1] == "artist:john lee hooker"
    assert groups[2] == "artist:coleman hawkins"  # unannotated run inside Coleman Hawkins' clips


@pytest.mark.slow
def test_bundled_default_scores_a_taggram_table_of_held_out_audio(gtzan_mini, tmp_path, capsys):
    """Taggrams from genrekit's own musicnn port of gtzan-mini's test-list clips, scored as a table."""
    from genrekit import load_model
    from genrekit.audio.decode import load_audio
    from genrekit.audio.segments import segment_samples
    from genrekit.data.splits import load_gtzan_split_lists

    model = load_model()
    test = set(load_gtzan_split_lists()["test"])
    clips = sorted(p for p in gtzan_mini.rglob("*.flac") if p.stem in test)
    assert clips, "gtzan-mini holds test-list clips"
    xs, ids, ys = [], [], []
    for clip in clips:
        segments = segment_samples(load_audio(clip, sr=16000).samples, 16000, window=3.0, hop=3.0)
        rows = model.feature(torch.as_tensor(segments.samples)).numpy()
        xs.append(rows)
        ids += [f"{clip.parent.name}/{clip.stem}.au"] * len(rows)
        ys += [model.labels.index(clip.parent.name)] * len(rows)
    np.savez(tmp_path / "held.npz", X=np.concatenate(xs), Y=np.array(ys), IDS=np.array(ids))
    code, out, err = _evaluate(capsys, "default", tmp_path / "held.npz", "--split", "all", "--json")
    assert code in (None, 0), err
    result = json.loads(out)
    assert result["metrics"]["n_tracks"] == len(clips)
    # the table path gives the same track answers as predicting the audio files, where prediction
    # keeps every segment (segments it finds not to be music are left out of its decision)
    compared = 0
    for clip, row in zip(clips, result["predictions"]):
        prediction = model.predict(str(clip), segments=True)
        if not any(s.not_music for s in prediction.segments):
            assert prediction.genre == row["predicted"]
            compared += 1
    assert compared >= 1



def test_parquet_folder_with_error_rows_and_metadata(tmp_path):
    """A folder as ``genrekit embed --ray`` writes it: several files, a track's rows gathered
    whatever file they are in, error rows left out but listed, no labels, the metadata kept."""
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    from genrekit.data.tables import METADATA_KEY

    schema = pa.schema([("track", pa.string()), ("path", pa.string()), ("label", pa.string()),
                        ("start", pa.float64()), ("end", pa.float64()), ("feature", pa.list_(pa.float32(), 2)),
                        ("fingerprint", pa.string()), ("error", pa.string())],
                       metadata={METADATA_KEY: json.dumps({"feature": {"name": "mfcc"}}).encode()})

    def part(rows, name):
        pq.write_table(pa.Table.from_pylist(rows, schema=schema), tmp_path / "t.parquet" / name)

    def row(track, start, value):
        return {"track": track, "path": track, "label": None, "start": start, "end": start + 3.0,
                "feature": [value, value], "fingerprint": "1-1", "error": None}

    (tmp_path / "t.parquet").mkdir()
    part([row("a.wav", 0.0, 1.0), row("b.wav", 0.0, 2.0)], "0.parquet")
    part([{"track": None, "path": "bad.wav", "label": None, "start": None, "end": None, "feature": None,
           "fingerprint": None, "error": "bad.wav: not audio"}, row("a.wav", 3.0, 3.0)], "1.parquet")
    table = read_table(tmp_path / "t.parquet")
    assert table.tracks == ["a.wav", "b.wav"] and table.labels is None
    assert table.row_tracks == ["a.wav", "a.wav", "b.wav"] and table.paths == table.row_tracks
    np.testing.assert_array_equal(table.features[:, 0], [1.0, 3.0, 2.0])
    np.testing.assert_array_equal(table.starts, [0.0, 3.0, 0.0])
    assert table.errors == [("bad.wav", "bad.wav: not audio")]
    assert table.metadata == {"feature": {"name": "mfcc"}}
