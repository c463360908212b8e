"""``genrekit evaluate`` on an audio folder answers every file exactly as ``genrekit predict`` does:
the same genre, and "not music" for a file the not-music rule rejects (issue 16, "one path")."""

import json

import numpy as np
import pytest
import soundfile as sf

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def held_out_folder(gtzan_mini, tmp_path_factory):
    """The gtzan-mini clips the default model was not trained on, by genre, plus 30 s of white
    noise filed under rock/ (links, not copies)."""
    from genrekit.inference.model import load_model

    trained = {entry.rsplit("/", 1)[-1].rsplit(".", 1)[0] for entry in load_model("default").spec.split["train"]}
    root = tmp_path_factory.mktemp("held-out")
    for clip in sorted(gtzan_mini.glob("*/*.flac")):
        if clip.stem not in trained:
            (root / clip.parent.name).mkdir(exist_ok=True)
            (root / clip.parent.name / clip.name).symlink_to(clip)
    noise = np.random.default_rng(16).normal(0, 0.1, 30 * 22050).astype(np.float32)
    (root / "rock").mkdir(exist_ok=True)
    sf.write(root / "rock" / "white-noise.wav", noise, 22050)
    return root


def test_evaluate_answers_every_file_as_predict_does(held_out_folder):
    from genrekit.evaluation.evaluate import evaluate_model
    from genrekit.evaluation.metrics import answer_name
    from genrekit.inference.model import load_model

    model = load_model("default")
    evaluation = evaluate_model(model, held_out_folder, split="all", dataset_kind="folder", cache_dir="")
    files = sorted(held_out_folder.glob("*/*.*"))
    assert len(evaluation.predictions) == len(files) > 10
    by_path = {row["path"]: row for row in evaluation.predictions}
    for path in files:
        predicted = model.predict(str(path))
        assert by_path[str(path)]["predicted"] == answer_name(predicted), path.name
        assert by_path[str(path)]["confidence"] == pytest.approx(predicted.confidence, abs=1e-3), path.name
    assert by_path[str(held_out_folder / "rock" / "white-noise.wav")]["predicted"] == "not music"
    metrics = evaluation.metrics
    assert metrics["not_music_tracks"] >= 1 and metrics["n_tracks"] == len(files)
    correct = sum(row["predicted"] == row["label"] for row in evaluation.predictions)
    assert metrics["track_accuracy"] == pytest.approx(correct / len(files))
    assert "not music" in evaluation.track_labels


def test_evaluate_cli_counts_the_not_music_file(held_out_folder, tmp_path):
    from typer.testing import CliRunner

    from genrekit.apps.cli.main import app

    result = CliRunner().invoke(app, ["evaluate", "default", str(held_out_folder), "--split", "all",
                                      "--kind", "folder", "--no-cache", "--json"])
    assert result.exit_code == 0, result.output
    evaluation = json.loads(result.stdout[result.stdout.index("{"):])
    noise = [row for row in evaluation["predictions"] if row["path"].endswith("white-noise.wav")]
    assert noise and noise[0]["predicted"] == "not music"
    assert evaluation["metrics"]["not_music_tracks"] >= 1
