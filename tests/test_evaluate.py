import json

import numpy as np
import pytest
import torch
from sklearn.metrics import confusion_matrix as sk_confusion
from sklearn.metrics import f1_score, precision_recall_fscore_support
from tones import SR, TINY_CNN, TINY_FEATURE, TINY_SEGMENT, make_tone_dataset

from genrekit.data.datasets import Track
from genrekit.errors import DatasetError
from genrekit.evaluation.evaluate import check_against_training, evaluate_model
from genrekit.evaluation.metrics import (
    classification_metrics,
    confusion_matrix,
    summarize_predictions,
    track_probabilities,
    voiced_mask,
)
from genrekit.evaluation.reports import write_report
from genrekit.experiments.crossval import cross_validate
from genrekit.inference.model import load_model
from genrekit.training.config import TrainConfig
from genrekit.training.loop import train_model

LABELS = ["blues", "jazz", "rock", "pop"]


pytestmark = pytest.mark.usefixtures("quiet_single_thread")


# --- metrics against scikit-learn ------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_match_sklearn(seed):
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, 4, 200)
    # a biased, imperfect classifier; class 3 is never predicted in one of the cases
    y_pred = np.where(rng.random(200) < 0.6, y_true, rng.integers(0, 3 if seed == 1 else 4, 200))
    metrics = classification_metrics(y_true, y_pred, LABELS)
    assert metrics["accuracy"] == pytest.approx(np.mean(y_true == y_pred))
    assert metrics["macro_f1"] == pytest.approx(f1_score(y_true, y_pred, average="macro"))
    assert metrics["confusion"] == sk_confusion(y_true, y_pred, labels=range(4)).tolist()
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=range(4), zero_division=0
    )
    for i, label in enumerate(LABELS):
        row = metrics["per_class"][label]
        assert row["precision"] == pytest.approx(precision[i])
        assert row["recall"] == pytest.approx(recall[i])
        assert row["f1"] == pytest.approx(f1[i])
        assert row["support"] == support[i]


def test_macro_f1_ignores_classes_absent_from_both_sides():
    y = np.array([0, 0, 1, 1])
    metrics = classification_metrics(y, np.array([0, 1, 1, 1]), LABELS)
    assert metrics["macro_f1"] == pytest.approx(f1_score(y, [0, 1, 1, 1], average="macro"))
    assert metrics["per_class"]["rock"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}


def test_confusion_matrix_rows_are_true_labels():
    assert confusion_matrix(np.array([0, 0, 1]), np.array([1, 1, 1]), 2).tolist() == [[0, 2], [0, 1]]


def test_track_probabilities_are_weighted_means():
    probabilities = np.array([[0.9, 0.1], [0.1, 0.9], [0.2, 0.8], [0.6, 0.4]])
    track_index = np.array([0, 0, 1, 1])
    weights = np.array([1.0, 0.5, 1.0, 1.0])
    result = track_probabilities(probabilities, track_index, 3, weights)
    np.testing.assert_allclose(result[0], (np.array([0.9, 0.1]) + 0.5 * np.array([0.1, 0.9])) / 1.5)
    np.testing.assert_allclose(result[1], [0.4, 0.6])
    assert np.isnan(result[2]).all()


def test_track_and_segment_levels_differ_as_expected():
    # track 0 (true 0): segments say 0, 0, 1 -> track right, 2/3 segments right
    # track 1 (true 1): segments say 0 (barely), 1 (clearly) -> track right, 1/2 segments right
    probabilities = np.array([[0.8, 0.2], [0.7, 0.3], [0.4, 0.6], [0.55, 0.45], [0.1, 0.9]])
    summary = summarize_predictions(probabilities, np.array([0, 0, 0, 1, 1]), np.array([0, 1]), ["a", "b"])
    assert summary["track_accuracy"] == 1.0
    assert summary["segment_accuracy"] == pytest.approx(3 / 5)
    assert summary["n_tracks"] == 2 and summary["n_segments"] == 5
    expected_nll = -np.mean(np.log([0.8, 0.7, 0.4, 0.45, 0.9]))
    assert summary["nll"] == pytest.approx(expected_nll)


def test_voiced_mask_keeps_all_silent_tracks():
    silent = np.array([True, False, True, True])
    track_index = np.array([0, 0, 1, 1])
    assert voiced_mask(silent, track_index).tolist() == [False, True, True, True]


# --- leakage guard ---------------------------------------------------------------------------


def tracks(*ids, group=None):
    return [Track(path=f"/x/{i}.wav", label="blues", track_id=i, group=group) for i in ids]


def test_leakage_guard_refuses_training_tracks():
    record = {"train": ["a", "b"], "test": ["c"]}
    with pytest.raises(DatasetError, match="1 of the 2 evaluated tracks were used to train m"):
        check_against_training(tracks("c", "b"), record, model_name="m")
    notes = check_against_training(tracks("c"), record)
    assert any("None of the evaluated tracks" in note for note in notes)
    assert any("no group (artist) information" in note for note in notes)


def test_leakage_guard_recognises_files_under_other_ids(tmp_path):
    """The same file opened through a manifest has another track id than in its folder dataset."""
    from genrekit.data.splits import track_key

    files = []
    for i, size in enumerate((100, 200)):
        path = tmp_path / f"blues.0000{i}.wav"
        path.write_bytes(b"x" * size)
        files.append(path)
    trained = [Track(path=files[0], label="blues", track_id="blues/blues.00000")]
    spec = {"train": ["blues/blues.00000"], "keys": {"train": [track_key(trained[0])]}}
    as_gtzan = [Track(path=p, label="blues", track_id=p.stem) for p in files]
    with pytest.raises(DatasetError, match="e.g. blues.00000"):
        check_against_training(as_gtzan, spec)
    # same name, other size (another encoding?): a note, not a refusal
    other = tmp_path / "other"
    other.mkdir()
    (other / "blues.00000.flac").write_bytes(b"y" * 50)
    notes = check_against_training([Track(path=other / "blues.00000.flac", label="blues", track_id="b0")], spec)
    assert any("share a file name" in note for note in notes)


def test_leakage_guard_refuses_shared_artists():
    spec = {"train": ["a"], "train_groups": ["artist-1"]}
    with pytest.raises(DatasetError, match="artist 'artist-1'"):
        check_against_training(tracks("z", group="artist-1"), spec)
    notes = check_against_training(tracks("z", group="artist-2"), spec)
    assert any("No artist" in note for note in notes)


def test_leakage_guard_says_when_it_cannot_check():
    notes = check_against_training(tracks("a"), {})
    assert any("records no training tracks" in note for note in notes)


# --- end to end on synthetic audio -----------------------------------------------------------


@pytest.fixture(scope="module")
def tones(tmp_path_factory):
    return make_tone_dataset(tmp_path_factory.mktemp("tones"))


def tiny_config(dataset, out, **changes):
    values = dict(dataset=str(dataset), out=str(out), sample_rate=SR, segment=TINY_SEGMENT, feature=TINY_FEATURE,
                  architecture=TINY_CNN, split={"method": "random", "valid_size": 0.2, "test_size": 0.2},
                  epochs=6, batch_size=8, learning_rate=0.01, patience=0, cache_dir="", device="cpu")
    values.update(changes)
    return TrainConfig.from_dict(values)


@pytest.fixture(scope="module")
def model_file(tones, tmp_path_factory):
    torch.set_num_threads(1)
    return train_model(tiny_config(tones, tmp_path_factory.mktemp("model") / "tones")).model_path


def test_evaluate_matches_the_metrics_recorded_at_training(model_file, tones):
    evaluation = evaluate_model(model_file, tones, split="test", cache_dir="")
    recorded = json.loads(model_file.read_text())["metrics"]["test"]
    assert evaluation.metrics["n_tracks"] == recorded["n_tracks"]
    assert evaluation.metrics["track_accuracy"] == pytest.approx(recorded["track_accuracy"])
    assert evaluation.metrics["segment_accuracy"] == pytest.approx(recorded["segment_accuracy"])
    assert evaluation.metrics["track_accuracy"] > 1 / 3
    assert "recorded test tracks" in evaluation.split_source
    assert {p["track_id"] for p in evaluation.predictions} == set(json.loads(model_file.read_text())["split"]["test"])


def test_evaluate_all_refuses_the_training_tracks(model_file, tones):
    with pytest.raises(DatasetError, match="were used to train"):
        evaluate_model(model_file, tones, split="all", cache_dir="")


def test_evaluate_finds_the_split_through_a_manifest_of_the_same_files(model_file, tones, tmp_path):
    manifest = tmp_path / "tracks.csv"
    rows = [f"{path},{path.parent.name}" for path in sorted(tones.rglob("*.wav"))]
    manifest.write_text("path,label\n" + "\n".join(rows) + "\n")
    recorded = json.loads(model_file.read_text())["split"]
    evaluation = evaluate_model(model_file, manifest, split="test", cache_dir="")
    assert evaluation.metrics["n_tracks"] == recorded["counts"]["test"]
    assert "recorded test tracks" in evaluation.split_source
    with pytest.raises(DatasetError, match="were used to train"):
        evaluate_model(model_file, manifest, split="all", cache_dir="")


def test_evaluate_on_other_data_and_report(model_file, tmp_path):
    other = make_tone_dataset(tmp_path / "other", tracks_per_genre=2, seed=7)
    # ids of a folder dataset are relative paths: rename so they differ from the training ids
    for path in sorted(other.rglob("*.wav")):
        path.rename(path.with_name("new-" + path.name))
    evaluation = evaluate_model(load_model(model_file), other, split="all", cache_dir="")
    assert evaluation.metrics["n_tracks"] == 6
    written = write_report(evaluation, tmp_path / "out" / "report.md")
    names = {p.name for p in written}
    assert names == {"report.md", "report-confusion.png", "report-confusion.json", "report-curves.png"}
    text = (tmp_path / "out" / "report.md").read_text()
    assert "Split: **all**, 6 tracks, 24 segments" in text
    assert "no group (artist) information" in text
    assert "![confusion matrix](report-confusion.png)" in text
    counts = json.loads((tmp_path / "out" / "report-confusion.json").read_text())["counts"]
    assert sum(map(sum, counts)) == 6
    assert (tmp_path / "out" / "report-curves.png").read_bytes()[:4] == b"\x89PNG"


def test_cross_validation(tones, tmp_path):
    result = cross_validate(tiny_config(tones, tmp_path / "cv", epochs=3), folds=3)
    assert len(result.fold_metrics) == 3
    assert sum(m["n_tracks"] for m in result.fold_metrics) == 18  # every track tested once
    accuracies = [m["track_accuracy"] for m in result.fold_metrics]
    assert result.summary["track_accuracy"]["mean"] == pytest.approx(np.mean(accuracies))
    assert result.summary["track_accuracy"]["std"] == pytest.approx(np.std(accuracies, ddof=1))
    assert np.sum(result.confusion) == 18
    written = write_report(result, tmp_path / "cv.md")
    assert "3-fold cross-validation" in written[0].read_text()


def run_cli(capsys, *args):
    """Run ``genrekit -q ARGS`` in this process (no second torch import); (exit code, stdout, stderr)."""
    from genrekit.apps.cli.main import main
    from genrekit.apps.console import set_verbosity

    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(["-q", *args])
    set_verbosity(quiet=True, debug=False)
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


def test_cli_train_then_evaluate(tones, tmp_path, capsys):
    out = tmp_path / "cli-model"
    code, stdout, stderr = run_cli(
        capsys, "train", "--dataset", str(tones), "--out", str(out), "--sample-rate", str(SR),
        "--window", "0.5", "--feature", json.dumps(TINY_FEATURE), "--arch", json.dumps(TINY_CNN),
        "--epochs", "6", "--batch-size", "8", "--lr", "0.01", "--patience", "0", "--split", "random",
        "--valid-size", "0.2", "--no-cache",
    )
    assert code == 0, stderr
    summary = json.loads(stdout)
    assert summary["test"]["track_accuracy"] > 1 / 3
    assert (tmp_path / "cli-model.safetensors").is_file() and (tmp_path / "cli-model.ckpt.json").is_file()
    code, stdout, stderr = run_cli(capsys, "evaluate", str(out) + ".json", str(tones),
                                   "--report", str(tmp_path / "r" / "report.md"), "--no-cache")
    assert code == 0, stderr
    assert f"track_accuracy: {summary['test']['track_accuracy']:.4f}" in stdout
    assert (tmp_path / "r" / "report-confusion.png").is_file()
    code, _, stderr = run_cli(capsys, "evaluate", str(out), str(tones), "--split", "all", "--no-cache")
    assert code == 1
    assert "the split leaks" in stderr and "Traceback" not in stderr
    code, _, stderr = run_cli(capsys, "train", "--dataset", str(tones), "--out", str(out), "--arch", "{oops")
    assert code == 2 and "--arch: not valid JSON" in stderr


def test_cli_resume_takes_the_recipe_from_the_checkpoint(tones, tmp_path, capsys):
    train_model(tiny_config(tones, tmp_path / "m", epochs=1))
    code, stdout, stderr = run_cli(capsys, "train", "--resume", str(tmp_path / "m.ckpt.json"), "--epochs", "2")
    assert code == 0, stderr
    spec = json.loads((tmp_path / "m.json").read_text())
    assert [row["epoch"] for row in spec["training"]["history"]] == [1, 2]


@pytest.mark.slow
def test_mfcc_cnn_on_gtzan_mini_one_fold(gtzan_mini, tmp_path):
    """The classic MFCC + small CNN recipe on real music: one fold of a 4-fold split, 8 epochs.

    gtzan-mini has 8 clips per genre and the folds are artist-disjoint, so a fold trains on ~5
    clips per genre: far too little to learn GTZAN well, but enough to beat chance (10 %). Some
    genres have a single artist, whom an artist-disjoint fold holds out entirely; the test takes
    a fold whose test genres all occur in training, else it would measure the split, not the
    pipeline. The bound is loose (20 %) because that fold holds about a dozen tracks (one track
    is ~8 points); over three seeds this recipe scored 33 to 58 % (track level).
    """
    from genrekit.data.datasets import open_dataset
    from genrekit.data.splits import kfold_splits

    tracks = open_dataset(gtzan_mini).tracks
    folds = kfold_splits(tracks, 4, seed=0)
    usable = [i for i, (train, test) in enumerate(folds)
              if {tracks[j].label for j in test} <= {tracks[j].label for j in train}]
    if not usable:
        pytest.skip("no fold of gtzan-mini has all its test genres in training")
    config = TrainConfig.from_dict(dict(
        dataset=str(gtzan_mini), out=str(tmp_path / "gtzan-mfcc-cnn"), feature={"name": "mfcc", "n_mfcc": 20},
        architecture={"name": "cnn2d", "channels": [16, 32, 64], "hidden": 64, "dropout": 0.3},
        split={"method": "kfold", "folds": 4, "fold": usable[0], "valid_size": 0.15}, epochs=8, batch_size=16,
        learning_rate=1e-3, patience=0, cache_dir=str(tmp_path / "cache"), checkpoint=False,
    ))
    result = train_model(config)
    test = result.metrics["test"]
    assert test["n_tracks"] == len(folds[usable[0]][1])
    assert result.spec.split["labels_not_in_train"] == []
    assert result.spec.split["groups"] == "some"  # GTZAN artists are known but for one clip
    assert test["track_accuracy"] > 0.20, test
    assert test["segment_accuracy"] > 0.15, test


def test_calibration_helpers_shared_by_training_and_the_default_recipe():
    """The ECE and the temperature search live once (evaluation.metrics, training.calibration)."""
    import math

    from genrekit.evaluation.metrics import expected_calibration_error
    from genrekit.training.calibration import minimize_temperature

    sure = np.array([[1.0, 0.0], [0.0, 1.0]])
    assert expected_calibration_error(sure, np.array([0, 1])) == 0.0
    assert expected_calibration_error(sure, np.array([1, 0])) == 1.0
    ninety = np.array([[0.9, 0.1]] * 10)
    assert expected_calibration_error(ninety, np.zeros(10, int)) == pytest.approx(0.1)
    assert minimize_temperature(lambda log_t: (log_t - math.log(2.0)) ** 2) == pytest.approx(2.0, rel=1e-3)
    assert minimize_temperature(lambda log_t: -log_t, 0.2, 5.0) == pytest.approx(5.0, rel=1e-3)
