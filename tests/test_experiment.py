"""Experiments: TOML files of variants, grouped k-fold runs, the results table and its files."""

import csv
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from tones import GENRES, SR, TINY_CNN, TINY_FEATURE, TINY_SEGMENT, make_tone_dataset

from genrekit.apps.cli.main import main
from genrekit.data.datasets import open_dataset
from genrekit.data.splits import split_tracks
from genrekit.errors import DatasetError, UsageError
from genrekit.experiments import experiment as experiment_module
from genrekit.experiments import results as results_module
from genrekit.experiments.experiment import load_experiment, plan_runs, run_experiments
from genrekit.experiments.results import COLUMNS

pytestmark = pytest.mark.usefixtures("quiet_single_thread")


def _toml(value) -> str:
    """A TOML inline value (enough for the dicts, lists, strings and numbers used here)."""
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, str):
        return json.dumps(value)
    return str(value).lower() if isinstance(value, bool) else str(value)


def write_experiment(folder: Path, dataset: str = "tones", group_by=("track",), folds: int = 3) -> Path:
    text = f"""
name = "tiny"
dataset = "{dataset}"

[protocol]
method = "kfold"
folds = {folds}
group_by = {_toml(list(group_by))}
valid_size = 0.2

[base]
sample_rate = {SR}
segment = {_toml(TINY_SEGMENT)}
feature = {_toml(TINY_FEATURE)}
epochs = 6
batch_size = 8
learning_rate = 0.01
patience = 0
cache_dir = "cache"
device = "cpu"

[[variant]]
name = "cnn"
input = "MFCC"
model = "CNN"
architecture = {_toml(TINY_CNN)}

[[variant]]
name = "logreg"
input = "MFCC mean and std"
model = "logistic regression"
architecture = {{ name = "sklearn-logreg" }}
"""
    path = folder / "tiny.toml"
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def tone_experiment(tmp_path_factory):
    folder = tmp_path_factory.mktemp("experiment")
    make_tone_dataset(folder / "tones", tracks_per_genre=6)
    return write_experiment(folder)


@pytest.fixture(scope="module")
def finished(tone_experiment):
    torch.set_num_threads(1)
    out = tone_experiment.parent / "out"
    rows = run_experiments([load_experiment(tone_experiment)], out, command="genrekit experiment run tiny.toml")
    return rows, out


def test_table_has_its_columns_and_numbers_above_chance(finished):
    rows, out = finished
    assert [row["run"] for row in rows] == ["cnn-track", "logreg-track"]
    with open(out / "results.csv", newline="") as handle:
        table = list(csv.DictReader(handle))
    assert tuple(table[0].keys()) == COLUMNS
    assert len(table) == 2
    for row in table:
        assert row["folds"] == "3" and row["protocol"] == "track-grouped"
        assert int(row["test_tracks"]) == 6 * len(GENRES)  # every track is tested exactly once
        for metric in ("track_accuracy", "segment_accuracy", "track_macro_f1"):
            assert 0.5 < float(row[f"{metric}_mean"]) <= 1.0  # chance is 1/3: three tone colours
            assert 0.0 <= float(row[f"{metric}_std"]) < 0.5
        assert float(row["train_seconds_per_fold"]) > 0
        assert int(row["parameters"]) > 0
    assert table[0]["parameter_kind"] == "trainable"
    assert table[1]["parameter_kind"] == "fitted values"


def test_results_files_and_per_run_reports(finished):
    rows, out = finished
    markdown = (out / "results.md").read_text()
    assert "| input | model | track accuracy | segment accuracy | track macro-F1 | train s/fold | parameters |" in markdown
    assert "3-fold cross-validation, track-grouped" in markdown
    assert "genrekit experiment run tiny.toml" in markdown
    assert "Chance is 33%" in markdown
    assert (out / "results.png").stat().st_size > 1000
    record = json.loads((out / "results.json").read_text())
    assert [row["run"] for row in record["rows"]] == ["cnn-track", "logreg-track"]
    for run in ("cnn-track", "logreg-track"):
        report = (out / "runs" / run / "report.md").read_text()
        assert "3-fold cross-validation" in report and "grouped by track" in report
        assert (out / "runs" / run / "report-confusion.png").is_file()
        for fold in range(3):
            assert (out / "runs" / run / f"fold{fold}.json").is_file()
            assert (out / "models" / run / f"fold{fold}.json").is_file()
    # the mean in the table is the mean of the fold records
    folds = [json.loads((out / "runs" / "cnn-track" / f"fold{i}.json").read_text()) for i in range(3)]
    mean = sum(f["metrics"]["track_accuracy"] for f in folds) / 3
    assert math.isclose(rows[0]["track_accuracy_mean"], mean)


def test_rerun_reuses_folds_of_the_same_recipe(finished, tone_experiment, monkeypatch):
    rows, out = finished

    def refuse(config):
        raise AssertionError(f"retrained {config.name}")

    monkeypatch.setattr(experiment_module, "train_fold", refuse)
    again = run_experiments([load_experiment(tone_experiment)], out)
    assert [r["track_accuracy_mean"] for r in again] == [r["track_accuracy_mean"] for r in rows]
    # another recipe is not reused
    changed = load_experiment(tone_experiment, only=["cnn"], settings={"learning_rate": 0.02})
    with pytest.raises(AssertionError, match="retrained"):
        run_experiments([changed], out)


def _grouped_tones(folder: Path) -> Path:
    """A manifest of tone tracks where each 'artist' made two tracks of one genre."""
    make_tone_dataset(folder / "audio", tracks_per_genre=8)
    lines = ["path,label,group"]
    for genre in GENRES:
        for i in range(8):
            lines.append(f"audio/{genre}/{genre}-{i}.wav,{genre},{genre}-artist-{i // 2}")
    manifest = folder / "tracks.csv"
    manifest.write_text("\n".join(lines) + "\n")
    return manifest


def test_group_by_artist_keeps_artists_apart_and_track_does_not(tmp_path):
    dataset = open_dataset(_grouped_tones(tmp_path))
    shared_any = False
    for fold in range(4):
        for group_by in ("artist", "track"):
            parts, record = split_tracks(dataset, {"method": "kfold", "folds": 4, "fold": fold,
                                                   "group_by": group_by, "valid_size": 0.2}, seed=0)
            ids = [{t.track_id for t in part} for part in parts]
            assert not (ids[0] & ids[2]) and not (ids[1] & ids[2]) and not (ids[0] & ids[1])
            artist = {t.track_id: t.group for t in dataset.tracks}
            train_artists = {artist[i] for i in ids[0] | ids[1]}
            test_artists = {artist[i] for i in ids[2]}
            assert record["group_by"] == group_by
            if group_by == "artist":
                assert not train_artists & test_artists
            else:
                shared_any |= bool(train_artists & test_artists)
    assert shared_any  # track grouping lets an artist's other tracks into training


def test_artist_grouping_needs_artists(tone_experiment, tmp_path):
    experiment = load_experiment(tone_experiment, group_by=["artist"])
    with pytest.raises(DatasetError, match="no track names its artist"):
        run_experiments([experiment], tmp_path / "out")


def test_experiment_file_errors(tmp_path, monkeypatch):
    path = write_experiment(tmp_path)
    text = path.read_text()
    cases = {
        "unknown key": (text.replace('name = "tiny"', 'name = "tiny"\nfoldz = 3'), "unknown key 'foldz'"),
        "split in a variant": (text + '\nsplit = { method = "random" }\n', "'split' is set by the experiment"),
        "typo in a setting": (text.replace("patience = 0", "patients = 0"), "unknown setting 'patients'"),
        "bad grouping": (text.replace('group_by = ["track"]', 'group_by = ["genre"]'), "group_by"),
        "one fold": (text.replace("folds = 3", "folds = 1"), "folds >= 2"),
    }
    for name, (content, message) in cases.items():
        path.write_text(content)
        with pytest.raises(UsageError, match=message):
            load_experiment(path)
    path.write_text(text)
    with pytest.raises(UsageError, match="no variant named 'svm'"):
        load_experiment(path, only=["svm"])
    monkeypatch.delenv("GENREKIT_TEST_DATA", raising=False)
    path.write_text(text.replace('dataset = "tones"', 'dataset = "$GENREKIT_TEST_DATA/tones"'))
    with pytest.raises(UsageError, match="unset environment variable"):
        load_experiment(path)
    monkeypatch.setenv("GENREKIT_TEST_DATA", "/data")
    assert load_experiment(path).dataset == "/data/tones"


def test_paths_protocol_and_overrides(tmp_path):
    path = write_experiment(tmp_path, group_by=("track", "artist"))
    experiment = load_experiment(path)
    assert experiment.dataset == str(tmp_path / "tones")  # relative to the file
    assert experiment.base["cache_dir"] == str(tmp_path / "cache")
    assert [run.id for run in plan_runs(experiment)] == ["cnn-track", "logreg-track", "cnn-artist", "logreg-artist"]
    fixed = load_experiment(path, data="elsewhere/gtzan", method="gtzan-artist", settings={"epochs": 2})
    assert fixed.dataset == "elsewhere/gtzan"  # --data is relative to the current folder
    runs = plan_runs(fixed)
    assert [run.id for run in runs] == ["cnn-gtzan-artist", "logreg-gtzan-artist"]
    config = runs[0].config(0, tmp_path)
    assert config.split["method"] == "gtzan-artist" and "fold" not in config.split
    assert config.epochs == 2
    assert "epochs" not in runs[1].variant.settings  # baselines have no epochs
    kfold = plan_runs(experiment)[2].config(1, tmp_path)
    assert kfold.split == {"method": "kfold", "valid_size": 0.2, "folds": 3, "fold": 1, "group_by": "artist"}
    assert kfold.out == str(tmp_path / "models" / "cnn-artist" / "fold1")


def test_command_line_prints_the_table(tone_experiment, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["-q", "experiment", "run", str(tone_experiment), "--only", "logreg", "--out", str(tmp_path / "cli"),
              "--folds", "2"])
    assert exit_info.value.code == 0
    table = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [row["run"] for row in table] == ["logreg-track"]
    assert table[0]["folds"] == "2"
    assert "--only logreg" in (tmp_path / "cli" / "results.md").read_text()
    with pytest.raises(SystemExit) as exit_info:
        main(["experiment", "run", str(tmp_path / "missing.toml")])
    assert exit_info.value.code == 2
    assert "experiment file not found" in capsys.readouterr().err


def test_summary_of_folds_and_the_reachable_accuracy(tone_experiment):
    run = plan_runs(load_experiment(tone_experiment))[0]

    def record(fold, accuracy, confusion, missing):
        metrics = {"track_accuracy": accuracy, "track_macro_f1": accuracy, "segment_accuracy": accuracy,
                   "segment_macro_f1": accuracy, "n_tracks": int(np.sum(confusion)), "n_segments": 10, "nll": 1.0}
        return {"fold": fold, "metrics": metrics, "labels": ["a", "b"], "confusion": confusion,
                "labels_not_in_train": missing, "timings": {"training": 2.0, "features": 1.0},
                "wall_seconds": 3.0, "cpu_seconds": 2.5, "parameters": 100, "parameter_kind": "trainable"}

    rows = results_module.summarize_folds(run, [
        record(0, 0.5, [[2, 0], [2, 0]], ["b"]),  # genre b untrainable in this fold: 2 of 4 tracks lost
        record(1, 1.0, [[2, 0], [0, 2]], []),
    ])
    assert rows["track_accuracy_mean"] == 0.75
    assert rows["track_accuracy_std"] == pytest.approx(np.std([0.5, 1.0], ddof=1))
    assert rows["test_tracks"] == 8 and rows["reachable_track_accuracy"] == 0.75
    assert rows["learnable_track_accuracy"] == 1.0  # every track of a trained genre was right
    assert rows["labels_missing_from_training"] == "b"
    assert rows["wall_seconds"] == 6.0 and rows["train_seconds_per_fold"] == 2.0
    text = results_module.results_markdown([rows])
    assert "no model can exceed 75.0% track accuracy" in text
    assert "| on learnable genres |" in text and "| 100.0 % |" in text


@pytest.mark.slow
def test_parallel_jobs_give_the_same_table(tone_experiment, finished, tmp_path):
    rows, _ = finished
    parallel = run_experiments([load_experiment(tone_experiment)], tmp_path / "parallel", jobs=2, threads=1)
    for one, other in zip(rows, parallel):
        for metric in ("track_accuracy_mean", "segment_accuracy_mean", "track_macro_f1_mean"):
            assert one[metric] == pytest.approx(other[metric], abs=1e-9), (one["run"], metric)
    assert json.loads((tmp_path / "parallel" / "results.json").read_text())["environment"]["jobs"] == 2


def test_a_training_config_is_an_experiment_of_one_recipe(tmp_path):
    from genrekit.experiments.tune import to_toml

    make_tone_dataset(tmp_path / "tones", tracks_per_genre=3, seconds=1.0)
    recipe = {"dataset": "tones", "out": "models/x", "name": "tone-cnn", "sample_rate": SR, "segment": TINY_SEGMENT,
              "feature": TINY_FEATURE, "architecture": TINY_CNN, "epochs": 2, "cache_dir": "cache",
              "split": {"method": "kfold", "folds": 3, "group_by": "track", "valid_size": 0.0}}
    path = tmp_path / "recipe.toml"
    path.write_text(to_toml(recipe))
    experiment = load_experiment(path)
    assert experiment.name == "tone-cnn" and experiment.dataset == str(tmp_path / "tones")
    assert experiment.protocol["method"] == "kfold" and experiment.protocol["group_by"] == ["track"]
    assert experiment.base == {"cache_dir": str(tmp_path / "cache")}  # relative to the file, as in genrekit train
    (run,) = plan_runs(experiment)
    assert run.id == "recipe-track" and run.variant.model == "cnn2d" and run.variant.input == "mfcc"
    config = run.config(2, tmp_path / "out")
    assert config.split == {"method": "kfold", "valid_size": 0.0, "folds": 3, "fold": 2, "group_by": "track"}
    assert config.out == str(tmp_path / "out" / "models" / "recipe-track" / "fold2")
    rows = run_experiments([experiment], tmp_path / "out")
    assert rows[0]["folds"] == 3 and rows[0]["test_tracks"] == 9
