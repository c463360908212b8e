"""Hyper-parameter search: inner grouped CV on the development tracks only, resumable studies."""

import csv
import dataclasses
import json
import os
import tomllib
from pathlib import Path

import pytest
from tones import GENRES, SR, TINY_CNN, TINY_FEATURE, TINY_SEGMENT, make_tone_dataset

from genrekit.apps.cli.main import main
from genrekit.data.datasets import open_dataset
from genrekit.data.splits import split_tracks
from genrekit.errors import UsageError
from genrekit.experiments.tune import (
    DEFAULT_SPACE,
    apply_params,
    read_tune_config,
    to_toml,
    tune,
    write_config,
)
from genrekit.training import loop as train_module
from genrekit.training.config import TrainConfig, load_config

pytestmark = pytest.mark.usefixtures("quiet_single_thread")


@pytest.fixture(scope="module")
def tones(tmp_path_factory):
    """Tone tracks with 'artists' (two tracks each), listed in a manifest."""
    folder = tmp_path_factory.mktemp("tones")
    make_tone_dataset(folder / "audio", tracks_per_genre=8, seconds=1.0)
    lines = ["path,label,group"] + [f"audio/{g}/{g}-{i}.wav,{g},{g}-{i // 2}" for g in GENRES for i in range(8)]
    (folder / "tracks.csv").write_text("\n".join(lines) + "\n")
    return folder / "tracks.csv"


def tiny_config(dataset, tmp_path, **changes) -> TrainConfig:
    values = dict(dataset=str(dataset), out=str(tmp_path / "model"), sample_rate=SR, segment=TINY_SEGMENT,
                  feature=TINY_FEATURE, architecture=TINY_CNN, epochs=3, batch_size=8, patience=0,
                  split={"method": "random", "valid_size": 0.15, "test_size": 0.25},
                  cache_dir=str(tmp_path / "cache"), device="cpu", checkpoint=False)
    values.update(changes)
    return TrainConfig.from_dict(values)


SPACE = {"learning_rate": [1e-3, 3e-2], "dropout": [0.0, 0.3], "width": [1.0, 2.0],
         "augment": [{}, {"freq_masks": 1, "freq_width": 2}]}


def test_trials_never_see_the_test_tracks_and_resume_adds_trials(tones, tmp_path, monkeypatch):
    config = tiny_config(tones, tmp_path)
    seen = []
    real_train = train_module.train_model

    def recording_train(trial_config, **kwargs):
        seen.append(trial_config)
        return real_train(trial_config, **kwargs)

    monkeypatch.setattr(train_module, "train_model", recording_train)
    study, best = tmp_path / "study.db", tmp_path / "best.toml"
    first = tune(config, SPACE, trials=2, study=study, out=best, folds=2)
    assert first.n_trials == 2 and first.held_out_tracks > 0
    assert first.development_tracks + first.held_out_tracks == 8 * len(GENRES)

    # every trial trained on the development manifest, which lists no test track
    dataset = open_dataset(tones)
    test_ids = {t.track_id for t in split_tracks(dataset, config.split, config.seed)[0].test}
    manifest = tmp_path / "study.tracks.csv"
    with open(manifest, newline="") as handle:
        listed = {row["track_id"] for row in csv.DictReader(handle)}
    assert listed and not listed & test_ids
    assert len(seen) == 2 * 2  # trials x inner folds
    assert {c.dataset for c in seen} == {str(manifest)}
    assert {c.split["group_by"] for c in seen} == {"artist"}
    assert {c.split["fold"] for c in seen} == {0, 1}

    second = tune(config, SPACE, trials=1, study=study, out=best, folds=2)
    assert second.n_trials == 3  # the same study, one more trial
    import optuna

    loaded = optuna.load_study(study_name="genrekit", storage=f"sqlite:///{study}")
    values = [t.value for t in loaded.trials]
    assert len(values) == 3 and all(0.0 <= v <= 1.0 for v in values)
    assert second.best_value == max(values)
    # a resumed study does not replay the trials it already has
    assert len({json.dumps(t.params, sort_keys=True) for t in loaded.trials}) == 3


def test_best_config_is_a_training_config_with_the_best_params(tones, tmp_path):
    config = tiny_config(tones, tmp_path)
    result = tune(config, SPACE, trials=2, study=tmp_path / "s.db", out=tmp_path / "out" / "best.toml", folds=2)
    text = (tmp_path / "out" / "best.toml").read_text()
    assert text.startswith("# Best of 2 completed trials")
    best = load_config(tmp_path / "out" / "best.toml")
    assert best.learning_rate == pytest.approx(result.best_params["learning_rate"])
    assert best.architecture["dropout"] == pytest.approx(result.best_params["dropout"])
    assert best.augment == result.best_params["augment"]
    width = result.best_params["width"]
    assert best.architecture["channels"] == [round(c * width) for c in TINY_CNN["channels"]]
    # everything else is the original recipe, split and paths included
    assert best.split == config.split
    assert best.dataset == str(tones) or best.dataset.endswith("tracks.csv")
    assert open_dataset(best.dataset).name == open_dataset(tones).name
    assert best.epochs == config.epochs and best.feature == config.feature


def test_study_of_another_recipe_is_refused(tones, tmp_path):
    config = tiny_config(tones, tmp_path)
    tune(config, SPACE, trials=1, study=tmp_path / "s.db", out=tmp_path / "best.toml", folds=2)
    with pytest.raises(UsageError, match="another config"):
        tune(tiny_config(tones, tmp_path, epochs=4), SPACE, trials=1, study=tmp_path / "s.db",
             out=tmp_path / "best.toml", folds=2)
    with pytest.raises(UsageError, match="another space"):
        tune(config, {"learning_rate": [1e-3, 1e-2]}, trials=1, study=tmp_path / "s.db",
             out=tmp_path / "best.toml", folds=2)


def test_apply_params_scales_width_everywhere():
    config = TrainConfig.from_dict({
        "dataset": "d", "out": "o", "feature": [{"name": "mfcc"}, {"name": "logmel"}],
        "architecture": {"name": "parallel", "hidden": 64,
                         "branches": [{"name": "cnn2d", "channels": [8, 16]}, {"name": "lstm"}]}})
    tuned = apply_params(config, {"width": 0.5, "dropout": 0.1, "learning_rate": 0.005, "augment": {"time_masks": 1}})
    arch = tuned.architecture
    assert arch["hidden"] == 32 and arch["dropout"] == 0.1
    assert arch["branches"][0]["channels"] == [4, 8]
    assert arch["branches"][0]["hidden"] == 32  # a default, scaled
    assert arch["branches"][1]["hidden_size"] == 32  # lstm default 64
    assert tuned.learning_rate == 0.005 and tuned.augment == {"time_masks": 1}
    assert config.architecture["hidden"] == 64  # the original is untouched
    with pytest.raises(UsageError, match="baselines"):
        apply_params(TrainConfig.from_dict({"dataset": "d", "out": "o", "architecture": {"name": "sklearn-svm"}}),
                     {"width": 2.0})


def test_toml_writer_round_trips():
    values = {"a": 1, "b": 0.1 + 0.2, "c": "x \"y\" é", "d": [1, 2], "e": {"f": [{"g": True}], "h": None},
              "skip": None, "odd key": False}
    assert tomllib.loads(to_toml(values)) == {k: v for k, v in values.items() if v is not None} | {
        "e": {"f": [{"g": True}]}}


def test_a_best_config_written_elsewhere_keeps_outputs_relative_to_the_current_folder(tones, tmp_path,
                                                                                      monkeypatch):
    """tune reads experiments/x.toml and writes runs/tune/x-best.toml: ``out`` must not become a
    path relative to either file (``../../..``), and the dataset must still be found."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "experiments").mkdir()
    source = tmp_path / "experiments" / "x.toml"
    source.write_text(f'dataset = "{os.path.relpath(tones, tmp_path / "experiments")}"\nout = "models/x"\n')
    config, _ = read_tune_config(source)
    assert config.out == "models/x" and Path(config.dataset).resolve() == Path(tones).resolve()
    best = write_config(config, tmp_path / "runs" / "tune" / "deep" / "x-best.toml")
    assert 'out = "models/x"' in best.read_text()
    again = load_config(best)
    assert again.out == "models/x" and Path(again.dataset).resolve() == Path(tones).resolve()
    absolute = write_config(dataclasses.replace(config, out=str(tmp_path / "abs")), tmp_path / "y.toml")
    assert load_config(absolute).out == str(tmp_path / "abs")


def test_config_file_with_search_table(tones, tmp_path):
    path = tmp_path / "tune.toml"
    path.write_text(f'dataset = "{tones}"\nout = "m"\n' + to_toml({"architecture": TINY_CNN}) +
                    "[search]\nlearning_rate = [1e-4, 1e-2]\nwidth = [0.5, 1.0]\n")
    config, space = read_tune_config(path, epochs=2)
    assert space == {"learning_rate": [1e-4, 1e-2], "width": [0.5, 1.0]}
    assert config.out == "m" and config.epochs == 2  # an output: relative to where genrekit runs
    path.write_text(f'dataset = "{tones}"\nout = "m"\n[search]\nmomentum = [0.1, 0.9]\n')
    with pytest.raises(UsageError, match="cannot search 'momentum'"):
        read_tune_config(path)
    path.write_text(f'dataset = "{tones}"\nout = "m"\n')
    assert read_tune_config(path)[1] == DEFAULT_SPACE


def test_command_line(tones, tmp_path, capsys):
    path = tmp_path / "tune.toml"
    config = {k: v for k, v in tiny_config(tones, tmp_path).to_dict().items() if v is not None}
    path.write_text(to_toml(config) + "[search]\nlearning_rate = [1e-3, 1e-2]\n")
    args = ["-q", "tune", str(path), "--trials", "1", "--folds", "2", "--study", str(tmp_path / "cli.db"),
            "--out", str(tmp_path / "cli-best.toml")]
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["trials"] == 1 and set(summary["best_params"]) == {"learning_rate"}
    assert load_config(tmp_path / "cli-best.toml").learning_rate == pytest.approx(summary["best_params"]["learning_rate"])
