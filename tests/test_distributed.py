"""genrekit on Ray: ``predict --ray`` and ``embed --ray`` on a real two-node cluster on this machine.

The cluster (``ray.cluster_utils.Cluster``: a head on 127.0.0.2 with the dashboard on 127.0.0.1,
a worker node on 127.0.0.3, 2 CPUs and a small object store each) is started once for the
module, with token authentication off and a private temporary folder, and stopped by the
``Cluster`` object (never ``ray stop``, which would kill other people's Ray processes). Every
Ray test has a timeout, because a pipeline that cannot be scheduled hangs without an error.

Without Ray installed only the tests that need no cluster run (``--ray`` then exits 2).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np
import pytest

from genrekit.apps.cli.main import main
from genrekit.apps.console import set_verbosity

SRC = Path(__file__).resolve().parents[1] / "src"
#: A subset of gtzan-mini: the first clip of every genre and two more (12 clips keep the suite fast).
SUBSET = [f"{genre}/{genre}.00000.flac" for genre in
          ("blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock")]
SUBSET += ["blues/blues.00001.flac", "jazz/jazz.00001.flac"]
HEAD, WORKER = "127.0.0.2", "127.0.0.3"
#: with pytest-xdist --dist loadgroup, one worker runs them all (one cluster, not one per worker)
pytestmark = pytest.mark.xdist_group("ray")


def run_cli(capsys, *argv):
    """``genrekit ARGV`` in this process: (exit code, stdout, stderr)."""
    with pytest.raises(SystemExit) as stopped:
        main([str(a) for a in argv])
    out, err = capsys.readouterr()
    set_verbosity(quiet=False)
    return stopped.value.code, out, err


def read_rows(folder) -> dict[str, dict]:
    import pyarrow.parquet as pq

    return {row["path"]: row for row in pq.read_table(str(folder)).to_pylist()}


def assert_same_prediction(ours: dict, local: dict, tolerance: float = 1e-6) -> None:
    assert ours["genre"] == local["genre"], ours["path"]
    assert abs(ours["confidence"] - local["confidence"]) <= tolerance
    assert [t["genre"] for t in ours["top"]] == [t["genre"] for t in local["top"]]
    assert np.allclose([t["probability"] for t in ours["top"]], [t["probability"] for t in local["top"]],
                       atol=tolerance, rtol=0)
    assert ours["duration"] == local["duration"] and ours["uncertain"] == local["uncertain"]


# -- without a cluster --------------------------------------------------------------------------


def test_ray_missing_exits_2_with_install_hint(capsys, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError, as when not installed
    (tmp_path / "a.wav").write_bytes(b"")
    for command in (["predict", tmp_path / "a.wav", "--ray", "local"],
                    ["embed", tmp_path / "a.wav", "--ray", "local", "-o", tmp_path / "t.parquet"]):
        code, out, err = run_cli(capsys, *command)
        assert code == 2
        assert "pip install 'genrekit[ray]'" in err and out == ""


def test_files_from_text_csv_and_parquet_lists(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from genrekit.apps.cluster.inputs import read_file_list

    (tmp_path / "lists").mkdir()
    expected = [str(tmp_path / "a.flac"), "/abs/b.mp3", "s3://bucket/c.wav"]
    (tmp_path / "lists" / "l.txt").write_text("# my files\n../a.flac\n\n/abs/b.mp3\ns3://bucket/c.wav\n")
    (tmp_path / "lists" / "l.csv").write_text("genre,path\nx,../a.flac\ny,/abs/b.mp3\nz,s3://bucket/c.wav\n")
    (tmp_path / "lists" / "headless.csv").write_text("../a.flac,x\n/abs/b.mp3,y\ns3://bucket/c.wav,z\n")
    pq.write_table(pa.table({"n": [1, 2, 3], "path": ["../a.flac", "/abs/b.mp3", "s3://bucket/c.wav"]}),
                   tmp_path / "lists" / "l.parquet")
    for name in ("l.txt", "l.csv", "headless.csv", "l.parquet"):
        assert read_file_list(str(tmp_path / "lists" / name)) == expected, name


def test_local_predict_reads_files_from(capsys, tmp_path, tiny_model_file, gtzan_mini):
    listing = tmp_path / "list.txt"
    listing.write_text("\n".join(str(gtzan_mini / p) for p in SUBSET[:2]) + "\n")
    code, out, _ = run_cli(capsys, "predict", "--files-from", listing, "-m", tiny_model_file, "-f", "jsonl", "-j", "0")
    assert code == 0
    assert [json.loads(line)["path"] for line in out.splitlines()] == [str(gtzan_mini / p) for p in SUBSET[:2]]


def test_resume_skips_same_path_and_fingerprint_and_refuses_other_settings(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from genrekit.apps.cluster.inputs import fingerprint
    from genrekit.apps.cluster.output import predict_schema, record_to_row, skip_done
    from genrekit.errors import UsageError

    files = [tmp_path / f"{name}.wav" for name in "abc"]
    for file in files:
        file.write_bytes(b"x")
    settings = {"model": "m@1", "top_k": 3}
    rows = [record_to_row({"path": str(files[0]), "error": "broken"}, fingerprint=fingerprint(str(files[0]))),
            record_to_row({"path": str(files[1]), "genre": "jazz", "confidence": 0.9, "top": [], "duration": 1.0,
                           "uncertain": False}, fingerprint="0-0")]  # b has changed since
    (tmp_path / "out.parquet").mkdir()
    pq.write_table(pa.Table.from_pylist(rows, schema=predict_schema(settings)), tmp_path / "out.parquet" / "part.parquet")
    found = [(str(f), None) for f in files]
    assert skip_done(found, str(tmp_path / "out.parquet"), settings) == (found[1:], 1)
    with pytest.raises(UsageError, match="other settings"):
        skip_done(found, str(tmp_path / "out.parquet"), {**settings, "top_k": 5})
    assert skip_done(found, str(tmp_path / "nothing-yet.parquet"), settings) == (found, 0)


def test_rows_round_trip_the_json_record_warnings_and_segments_included():
    """A predict row holds every field of ``Prediction.to_dict()`` (``warnings`` of repaired
    samples, silent segments) and gives the same record back, through Arrow too."""
    import pyarrow as pa

    from genrekit.apps.cluster.output import (
        predict_schema,
        record_to_row,
        row_to_record,
    )

    record = {"path": "a.wav", "genre": "jazz", "confidence": 0.75, "top": [{"genre": "jazz", "probability": 0.75}],
              "duration": 6.0, "uncertain": False, "short": True,
              "segments": [{"start": 0.0, "end": 3.0, "genre": "jazz", "probabilities": {"jazz": 0.75, "rock": 0.25}},
                           {"start": 3.0, "end": 6.0, "genre": None, "probabilities": None, "silent": True}],
              "warnings": ["3 NaN or infinite samples were read as 0"]}
    rows = pa.Table.from_pylist([record_to_row(record, model="m")], schema=predict_schema()).to_pylist()
    assert row_to_record(rows[0]) == record
    assert list(row_to_record(rows[0])) == list(record)  # same key order as the local JSON
    error = {"path": "b.wav", "error": "b.wav: not audio"}
    assert row_to_record(pa.Table.from_pylist([record_to_row(error)], schema=predict_schema()).to_pylist()[0]) == error


def test_resume_checks_every_part_of_the_output(tmp_path):
    """A part written by another model, sorted after a part of this one, is not taken as done."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from genrekit.apps.cluster.inputs import fingerprint
    from genrekit.apps.cluster.output import predict_schema, record_to_row, skip_done
    from genrekit.errors import UsageError

    files = [tmp_path / f"{name}.wav" for name in "ab"]
    for file in files:
        file.write_bytes(b"x")
    ours, theirs = {"model": "m@1", "top_k": 3}, {"model": "other@2", "top_k": 3}
    out = tmp_path / "out.parquet"
    out.mkdir()
    for part, file, settings in (("part-0.parquet", files[0], ours), ("part-1.parquet", files[1], theirs)):
        row = record_to_row({"path": str(file), "genre": "jazz", "confidence": 0.9, "top": [], "duration": 1.0,
                             "uncertain": False}, fingerprint=fingerprint(str(file)))
        pq.write_table(pa.Table.from_pylist([row], schema=predict_schema(settings)), out / part)
    with pytest.raises(UsageError, match="other settings.*part-1.parquet"):
        skip_done([(str(f), None) for f in files], str(out), ours)


def test_rows_carry_not_music_and_styles():
    """``not_music`` (file and segments) and ``styles`` of the JSON contract survive a Parquet row."""
    import pyarrow as pa

    from genrekit.apps.cluster.output import predict_schema, record_to_row, row_to_record

    record = {"path": "talk.wav", "genre": None, "confidence": 0.4, "top": [{"genre": "jazz", "probability": 0.4}],
              "duration": 6.0, "uncertain": True, "not_music": True,
              "styles": [{"style": "ambient", "score": 0.31}],
              "segments": [{"start": 0.0, "end": 3.0, "genre": None, "probabilities": {"jazz": 0.4, "rock": 0.6},
                            "not_music": True},
                           {"start": 3.0, "end": 6.0, "genre": "jazz", "probabilities": {"jazz": 0.9, "rock": 0.1}}]}
    row = pa.Table.from_pylist([record_to_row(record, model="m")], schema=predict_schema()).to_pylist()[0]
    assert row["not_music"] is True and row["styles"] == [{"style": "ambient", "score": 0.31}]
    assert row_to_record(row) == record and list(row_to_record(row)) == list(record)


def test_styles_with_ray_need_a_taggram_model_and_fail_on_the_driver(capsys, tmp_path, tiny_model_file, gtzan_mini):
    """``--styles`` goes with ``--ray`` now; a model without the MSD taggram is refused before
    any cluster is started (exit 2), not in every actor."""
    pytest.importorskip("ray")
    code, out, err = run_cli(capsys, "predict", gtzan_mini / SUBSET[0], "--ray", "local", "--styles",
                             "-m", tiny_model_file, "-o", tmp_path / "out.parquet")
    assert code == 2 and "styles need" in err and out == "", err
    assert not (tmp_path / "out.parquet").exists()


def long_and_nul_entries(folder: Path) -> list[str]:
    """A list entry longer than a file name may be (300 bytes) and one with a NUL byte."""
    return [str(folder / ("a" * 300 + ".wav")), str(folder / "x\x00y.wav")]


def test_local_embed_files_from_long_and_nul_entries_are_error_rows(capsys, tmp_path, gtzan_mini):
    import pyarrow.parquet as pq

    good = str(gtzan_mini / SUBSET[0])
    listing = tmp_path / "list.txt"
    listing.write_text("\n".join([good, *long_and_nul_entries(tmp_path)]) + "\n")
    out = tmp_path / "table.parquet"
    code, _, err = run_cli(capsys, "-q", "embed", "--files-from", listing, "--feature", SMALL_FEATURE, "-o", out)
    assert code == 1 and "Traceback" not in err and err.count("error: ") == 2, err
    rows = pq.read_table(out).to_pylist()
    errors = {row["path"]: row["error"] for row in rows if row["error"]}
    assert set(errors) == set(long_and_nul_entries(tmp_path))
    assert any(row["path"] == good and row["error"] is None for row in rows)


def test_stages_without_a_cluster_equal_local_predict(tiny_model_file, tmp_path):
    """The decoding stage and the model actor's code, run in this process on a clean file, a file
    with NaN samples (cleaned, with a warning) and a file streamed by the actor: the local records."""
    pytest.importorskip("ray")
    import pyarrow as pa
    import soundfile as sf

    from genrekit.apps.cluster.output import predict_schema, row_to_record
    from genrekit.apps.cluster.stages import Classify, decode_batch
    from genrekit.inference.batch import decode_segments, predict_files
    from genrekit.inference.model import load_model

    model = load_model(tiny_model_file)
    t = np.arange(int(7.5 * 22050)) / 22050
    clean, damaged = tmp_path / "clean.wav", tmp_path / "nan.wav"
    sf.write(clean, (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 22050, subtype="FLOAT")
    samples = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    samples[1000:1100] = np.nan
    sf.write(damaged, samples, 22050, subtype="FLOAT")
    files = [str(clean), str(damaged)]
    local = list(predict_files(files, model, segments=True))
    assert "warnings" in local[1]

    options = {"top_k": 3, "aggregate": "mean", "segments": True}
    stage = Classify.__new__(Classify)  # the actor's state, without Ray's actor machinery
    stage.model, stage.model_id, stage.options = model, model.model_id, options
    stage.excerpt, stage.ledger, stage.node = {"offset": 0.0, "max_duration": None}, None, "here"
    stage.schema = predict_schema({"model": model.model_id})
    decode = partial(decode_segments, sr=model.sample_rate, window=model.window, hop=model.hop,
                     last=model.segment.last, offset=0.0, duration=None)
    items = pa.Table.from_pylist([{"path": f, "track": None, "label": None, "problem": None} for f in files])
    decoded = decode_batch(items, decode=decode).to_pylist()
    ours = [row_to_record(row) for row in stage._classify(decoded)]
    streamed = row_to_record(stage._classify([{**decoded[1], "stream": True, "samples": None}])[0])
    for record, reference in zip([*ours, streamed], [*local, local[1]]):
        assert set(record) == set(reference)
        assert_same_prediction(record, reference)
        assert record.get("warnings") == reference.get("warnings")


def test_stages_classify_a_name_that_is_not_utf8_as_local_predict(tiny_model_file, tmp_path, gtzan_mini):
    """A file name with a raw 0xE9 byte goes through the Arrow tables of a Ray run as its \\xHH
    form plus its exact bytes: decoded, classified (in a batch and streamed) and fingerprinted as
    the real file, with local predict's answer; a resume finds it done."""
    pytest.importorskip("ray")
    import pyarrow as pa
    import pyarrow.parquet as pq

    from genrekit.apps.cluster.output import predict_schema, row_to_record, skip_done
    from genrekit.apps.cluster.pipeline import _arrow_safe
    from genrekit.apps.cluster.stages import Classify, decode_batch
    from genrekit.inference.batch import decode_segments, predict_files
    from genrekit.inference.model import load_model
    from genrekit.inference.writers import write_records
    from genrekit.utils import utf8_text

    model = load_model(tiny_model_file)
    latin1 = os.fsdecode(bytes(tmp_path) + b"/caf\xe9.flac")
    shutil.copy(gtzan_mini / "jazz" / "jazz.00000.flac", os.fsencode(latin1))
    local = list(predict_files([latin1], model))[0]
    assert "error" not in local
    stage = Classify.__new__(Classify)  # the actor's state, without Ray's actor machinery
    stage.model, stage.model_id, stage.options = model, model.model_id, {"top_k": 3, "aggregate": "mean",
                                                                         "segments": False}
    stage.excerpt, stage.ledger, stage.node = {"offset": 0.0, "max_duration": None}, None, "here"
    stage.schema = predict_schema({"model": model.model_id})
    decode = partial(decode_segments, sr=model.sample_rate, window=model.window, hop=model.hop,
                     last=model.segment.last, offset=0.0, duration=None)
    item = _arrow_safe({"path": latin1, "track": None, "label": None, "problem": None})
    decoded = decode_batch(pa.Table.from_pylist([item]), decode=decode).to_pylist()
    assert decoded[0]["error"] is None and decoded[0]["fingerprint"]
    rows = stage._classify(decoded) + stage._classify([{**decoded[0], "stream": True, "samples": None}])
    for row in rows:
        assert row["error"] is None and row["path"] == utf8_text(latin1) and row["path"].endswith("caf\\xe9.flac")
        assert_same_prediction(row_to_record(row), {**local, "path": row["path"]})
    # without -o FOLDER.parquet the local writers print the name as for local predict
    for fmt, written in (("jsonl", 'caf\\\\xe9.flac"'), ("csv", "caf\\xe9.flac")):
        texts = []
        for record in (local, row_to_record(rows[0])):
            handle = io.StringIO()
            write_records([record], fmt, handle)
            texts.append(handle.getvalue())
        assert written in texts[0] and [t.count(written) for t in texts] == [1, 1]
        assert texts[0].split(",")[:2] == texts[1].split(",")[:2]
    out = tmp_path / "out.parquet"
    out.mkdir()
    pq.write_table(pa.Table.from_pylist(rows[:1], schema=stage.schema), out / "part.parquet")
    assert skip_done([(latin1, None)], str(out)) == ([], 1)


@pytest.fixture(scope="module")
def labelled(tmp_path_factory, gtzan_mini) -> Path:
    """A folder-per-label dataset of three clips."""
    root = tmp_path_factory.mktemp("labelled")
    for relative in SUBSET[:2] + ["jazz/jazz.00001.flac"]:
        (root / Path(relative).parent).mkdir(exist_ok=True)
        shutil.copy(gtzan_mini / relative, root / relative)
    return root


SMALL_FEATURE = '{"name": "logmel", "n_mels": 16, "hop_length": 1024}'


def test_embed_writes_a_parquet_feature_table_that_reads_back(capsys, tmp_path, labelled):
    import torch

    from genrekit.audio.decode import load_audio
    from genrekit.audio.segments import segment_samples
    from genrekit.data.tables import read_table
    from genrekit.features.registry import build_feature

    (labelled / "blues" / "broken.wav").write_text("not audio")
    out = tmp_path / "table.parquet"
    code, _, err = run_cli(capsys, "embed", labelled, "--labels", "folder", "--feature", SMALL_FEATURE, "-o", out)
    assert code == 1 and "broken.wav" in err  # the broken file is reported and recorded, the rest written
    (labelled / "blues" / "broken.wav").unlink()
    table = read_table(out)
    assert table.errors and table.errors[0][0].endswith("broken.wav")
    assert sorted(set(table.row_labels)) == ["blues", "classical", "jazz"]
    assert table.metadata["feature"]["n_mels"] == 16 and table.metadata["sample_rate"] == 22050
    # the rows are exactly the feature of each 3 s window, flattened
    clip = str(labelled / "jazz" / "jazz.00001.flac")
    rows = [i for i, path in enumerate(table.paths) if path == clip]
    segs = segment_samples(load_audio(clip, 22050).samples, 22050, window=3.0)
    expected = build_feature(json.loads(SMALL_FEATURE))(torch.from_numpy(segs.samples)).numpy().reshape(len(segs), -1)
    assert table.features.shape == (len(table.paths), expected.shape[1])
    np.testing.assert_allclose(table.features[rows], expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(table.starts[rows], segs.starts)
    assert {table.row_tracks[i] for i in rows} == {"jazz/jazz.00001"}


# -- on a two-node cluster ----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def cluster():
    """A head (127.0.0.2, dashboard on 127.0.0.1) and a worker node (127.0.0.3), 2 CPUs each."""
    pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    # a short private temporary folder (Unix socket paths are limited) that also keeps this
    # cluster's address file away from any other Ray on the machine
    temp = tempfile.mkdtemp(prefix="gkr", dir="/tmp")
    saved = {key: os.environ.get(key) for key in ("RAY_TMPDIR", "RAY_AUTH_MODE", "PYTHONPATH", "RAY_ADDRESS")}
    os.environ.update(RAY_TMPDIR=temp, RAY_AUTH_MODE="disabled",
                      PYTHONPATH=os.pathsep.join(filter(None, [str(SRC), saved["PYTHONPATH"]])))
    os.environ.pop("RAY_ADDRESS", None)
    nodes = Cluster(shutdown_at_exit=True)
    try:
        dashboard = free_port()
        nodes.add_node(num_cpus=2, node_ip_address=HEAD, object_store_memory=200 << 20, include_dashboard=True,
                       dashboard_host="127.0.0.1", dashboard_port=dashboard)
        nodes.add_node(num_cpus=2, node_ip_address=WORKER, object_store_memory=200 << 20)
        nodes.wait_for_nodes()
        nodes.dashboard_url = f"http://127.0.0.1:{dashboard}"
        yield nodes
    finally:
        nodes.shutdown()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture(scope="module")
def clips(tmp_path_factory, gtzan_mini) -> Path:
    """Copies of the subset (tests change their modification times) and a corrupt file."""
    folder = tmp_path_factory.mktemp("clips")
    for relative in SUBSET:
        shutil.copy(gtzan_mini / relative, folder / Path(relative).name)
    (folder / "corrupt.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(20))
    return folder


@pytest.fixture(scope="module")
def local_records(clips) -> dict[str, dict]:
    """``genrekit predict`` on this machine, without Ray: the reference."""
    from genrekit.inference.batch import predict_files
    from genrekit.inference.model import load_model

    return {r["path"]: r for r in predict_files(sorted(str(p) for p in clips.glob("*.flac")), load_model(None))}


@pytest.fixture(scope="module")
def cluster_run(cluster, clips, tmp_path_factory):
    """``genrekit predict FOLDER file://CLIP --ray HEAD:PORT -o out.parquet`` once for several tests."""
    import ray.data

    out = tmp_path_factory.mktemp("cluster-run") / "out.parquet"
    uri = "file://" + str(clips / "rock.00000.flac")
    # Ray Data starts actors asynchronously: on a loaded machine the first actor up can classify
    # all 13 files before the other node's actor has imported torch. Wait for the whole pool.
    context = ray.data.DataContext.get_current()
    saved, context.wait_for_min_actors_s = context.wait_for_min_actors_s, 180
    started = time.perf_counter()
    try:
        with pytest.raises(SystemExit) as stopped:
            main(["-q", "predict", str(clips), uri, "--ray", cluster.address, "-o", str(out)])
    finally:
        context.wait_for_min_actors_s = saved
        set_verbosity(quiet=False)
    return {"code": stopped.value.code, "out": out, "uri": uri, "seconds": time.perf_counter() - started}


@pytest.mark.timeout(240)
def test_two_node_predict_equals_local_predict(cluster_run, local_records, clips):
    rows = read_rows(cluster_run["out"])
    assert cluster_run["code"] == 1  # the corrupt file
    assert set(rows) == set(local_records) | {str(clips / "corrupt.wav"), cluster_run["uri"]}
    for path, local in local_records.items():
        assert rows[path]["error"] is None
        assert_same_prediction(rows[path], local)
        assert rows[path]["fingerprint"] and rows[path]["model"]
    # a pyarrow.fs URI gives the same answer as the path
    assert_same_prediction({**rows[cluster_run["uri"]]}, local_records[str(clips / "rock.00000.flac")])


@pytest.mark.timeout(60)
def test_corrupt_file_gives_an_error_row(cluster_run, clips):
    row = read_rows(cluster_run["out"])[str(clips / "corrupt.wav")]
    assert row["error"].startswith(str(clips / "corrupt.wav") + ": ")
    assert row["genre"] is None and row["top"] is None


@pytest.mark.timeout(60)
def test_work_lands_on_both_nodes(cluster_run):
    """Decoding tasks are spread over the nodes; model actors too, but an idle actor on the node
    that holds a block may take every batch of a job this small, so both stages count."""
    rows = read_rows(cluster_run["out"]).values()
    assert {row["node"] for row in rows if row["node"]} <= {HEAD, WORKER}
    assert {node for row in rows for node in (row["node"], row["decode_node"]) if node} == {HEAD, WORKER}


@pytest.mark.timeout(180)
def test_rerun_skips_files_already_done(cluster, cluster_run, clips, gtzan_mini):
    from genrekit.apps.cluster.output import output_files
    from genrekit.apps.cluster.pipeline import predict_on_ray

    out = cluster_run["out"]
    before = set(output_files(str(out)))
    changed = clips / "blues.00000.flac"
    os.utime(changed, ns=(time.time_ns(), time.time_ns()))  # same path, new fingerprint: redone
    added = clips / "pop.00001.flac"
    shutil.copy(gtzan_mini / "pop" / "pop.00001.flac", added)
    try:
        set_verbosity(quiet=True)
        report = predict_on_ray([str(clips), cluster_run["uri"]], address=cluster.address, output=str(out))
    finally:
        set_verbosity(quiet=False)
        added.unlink()
    assert (report.listed, report.skipped, report.ok, report.failed) == (len(SUBSET) + 2 + 1, len(SUBSET) + 1, 2, 0)
    new = [name for name in output_files(str(out)) if name not in before]
    import pyarrow.parquet as pq

    assert sorted(pq.read_table(new[0])["path"].to_pylist()) == sorted([str(changed), str(added)])


@pytest.mark.timeout(180)
def test_a_file_that_kills_its_worker_twice_becomes_an_error_row(cluster, clips, tmp_path):
    import ray.cloudpickle
    import ray_poison

    from genrekit.apps.cluster.pipeline import predict_on_ray

    ray.cloudpickle.register_pickle_by_value(ray_poison)  # the workers cannot import the tests folder
    poison = tmp_path / "poison.flac"
    shutil.copy(clips / "jazz.00000.flac", poison)
    files = [str(clips / "blues.00001.flac"), str(poison), str(clips / "jazz.00001.flac")]
    decode = partial(ray_poison.decode_or_die, sr=16000, window=3.0, hop=3.0, last="pad", offset=0.0, duration=None)
    try:
        set_verbosity(quiet=True)
        report = predict_on_ray(files, address=cluster.address, output=str(tmp_path / "out.parquet"), decode=decode)
    finally:
        set_verbosity(quiet=False)
    rows = read_rows(tmp_path / "out.parquet")
    assert (report.ok, report.failed, report.missing) == (2, 1, 0)
    assert "died 2 times" in rows[str(poison)]["error"]
    assert rows[files[0]]["genre"] and rows[files[2]]["genre"]


@pytest.mark.timeout(180)
def test_json_lines_on_stdout_and_ray_local(capsys, cluster, clips, local_records):
    files = [str(clips / "country.00000.flac"), str(clips / "metal.00000.flac")]
    for address in (cluster.address, "local"):
        code, out, _ = run_cli(capsys, "-q", "predict", *files, "--ray", address, "-f", "jsonl")
        records = [json.loads(line) for line in out.splitlines()]
        assert code == 0 and [r["path"] for r in records] == files  # input order, as locally
        for record in records:
            assert set(record) == set(local_records[record["path"]])
            assert_same_prediction(record, local_records[record["path"]])


@pytest.mark.timeout(180)
def test_embed_on_the_cluster_equals_local_embed(capsys, cluster, labelled, tmp_path):
    from genrekit.data.tables import read_table

    code, _, _ = run_cli(capsys, "embed", labelled, "--labels", "folder", "--feature", SMALL_FEATURE,
                         "-o", tmp_path / "local.parquet")
    assert code == 0
    code, _, err = run_cli(capsys, "-q", "embed", labelled, "--labels", "folder", "--feature", SMALL_FEATURE,
                           "--ray", cluster.address, "-o", tmp_path / "ray.parquet")
    assert code == 0, err
    local, ours = read_table(tmp_path / "local.parquet"), read_table(tmp_path / "ray.parquet")
    order = np.lexsort((ours.starts, ours.paths))
    assert [ours.paths[i] for i in order] == local.paths
    assert [ours.row_labels[i] for i in order] == local.row_labels
    assert [ours.row_tracks[i] for i in order] == local.row_tracks
    np.testing.assert_allclose(ours.features[order], local.features, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(ours.starts[order], local.starts)
    assert ours.metadata == local.metadata


@pytest.mark.timeout(240)
def test_ray_job_submit_runs_genrekit_on_the_cluster(cluster, clips, tmp_path):
    """``ray job submit`` of a genrekit command to the head's dashboard (on 127.0.0.1)."""
    out = tmp_path / "job.parquet"
    ray_cli = Path(sys.executable).parent / "ray"
    command = [str(ray_cli), "job", "submit", "--address", cluster.dashboard_url, "--",
               sys.executable, "-m", "genrekit", "-q", "predict", str(clips / "disco.00000.flac"),
               str(clips / "hiphop.00000.flac"), "--ray", "auto", "-o", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=220, env=os.environ.copy())
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "succeeded" in done.stdout.lower()
    rows = read_rows(out)
    assert sorted(Path(p).name for p in rows) == ["disco.00000.flac", "hiphop.00000.flac"]
    assert all(row["genre"] for row in rows.values())


@pytest.mark.timeout(240)
def test_bad_list_entries_are_error_rows_and_names_not_utf8_are_classified_on_ray(capfd, cluster, clips, tmp_path):
    """``--files-from`` entries too long or with a NUL byte are error rows: no Ray traceback, no
    "missing" files, no Ray INFO lines (only with --debug); the rows carry the JSON contract's
    fields. A file name that is not UTF-8 is classified (local predict's answer), its ``path``
    written with ``\\xHH`` as locally, and a rerun skips it as done."""
    import pyarrow.parquet as pq

    from genrekit.inference.batch import predict_files
    from genrekit.inference.model import load_model
    from genrekit.utils import utf8_text

    latin1 = os.fsdecode(bytes(tmp_path) + b"/caf\xe9.flac")
    shutil.copy(clips / "jazz.00000.flac", os.fsencode(latin1))
    good = str(clips / "blues.00000.flac")
    listing = tmp_path / "list.txt"
    listing.write_bytes(os.fsencode("\n".join([good, *long_and_nul_entries(tmp_path), latin1]) + "\n"))
    command = ["predict", "--files-from", str(listing), "--ray", cluster.address, "--styles",
               "-o", str(tmp_path / "p.parquet")]
    capfd.readouterr()
    with pytest.raises(SystemExit) as stopped:
        main(command)
    err = capfd.readouterr().err
    assert stopped.value.code == 1
    assert "Traceback" not in err and "missing" not in err and " INFO " not in err, err[-3000:]
    assert err.count("error: ") == 2, err[-3000:]
    rows = {row["path"]: row for row in pq.read_table(str(tmp_path / "p.parquet")).to_pylist()}
    assert rows[good]["genre"] and rows[good]["not_music"] is False and rows[good]["styles"] is not None
    assert sum(row["error"] is not None for row in rows.values()) == 2
    shown = utf8_text(latin1)
    assert shown.endswith("caf\\xe9.flac") and rows[shown]["error"] is None and rows[shown]["fingerprint"]
    assert_same_prediction(rows[shown], list(predict_files([latin1], load_model(None)))[0])
    with pytest.raises(SystemExit) as stopped:  # resume: both classified files are done
        main(command)
    err = capfd.readouterr().err
    assert "2 already in" in err, err[-3000:]
    again = [row["path"] for row in pq.read_table(str(tmp_path / "p.parquet")).to_pylist()]
    assert again.count(shown) == 1 and again.count(good) == 1
    try:
        with pytest.raises(SystemExit) as stopped:
            main(["-q", "embed", "--files-from", str(listing), "--feature", SMALL_FEATURE, "--ray", cluster.address,
                  "-o", str(tmp_path / "e.parquet")])
    finally:
        set_verbosity(quiet=False)
    err = capfd.readouterr().err
    assert stopped.value.code == 1 and "Traceback" not in err and "missing" not in err, err[-3000:]
    table = pq.read_table(str(tmp_path / "e.parquet")).to_pylist()
    assert len({row["path"] for row in table if row["error"]}) == 2
    assert [row["error"] for row in table if row["path"] == shown] and all(
        row["error"] is None and row["feature"] is not None for row in table if row["path"] == shown)
