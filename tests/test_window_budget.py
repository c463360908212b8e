"""The window budget everywhere it is offered (issue 18, item 3): the library database keys results
by it, the CLI commands and the service take it, a timeline keeps every window."""

import io
import json

import numpy as np
import pytest
import soundfile as sf

from genrekit.audio.windows import DEFAULT_MAX_WINDOWS


@pytest.fixture(scope="module")
def long_track(tmp_path_factory):
    """75 s (25 windows) of a sweep with noise, so that different windows give different outputs."""
    folder = tmp_path_factory.mktemp("budget")
    sr = 22050
    t = np.arange(75 * sr) / sr
    rng = np.random.default_rng(3)
    samples = 0.3 * np.sin(2 * np.pi * (100 + 30 * t) * t) + rng.normal(0, 0.05, t.size)
    sf.write(folder / "long.flac", samples.astype(np.float32), sr)
    return folder / "long.flac"


def test_changing_the_budget_recomputes_library_results(tiny_model, long_track, tmp_path):
    from genrekit.apps.library.db import LibraryDB
    from genrekit.apps.library.results import library_result_key, predict_with_library

    found = [(str(long_track), None)]
    assert library_result_key(tiny_model, max_windows=0) == tiny_model.model_id  # every window: the old key
    assert library_result_key(tiny_model) == f"{tiny_model.model_id}?max_windows={DEFAULT_MAX_WINDOWS}"
    with LibraryDB(tmp_path / "library.sqlite") as db:
        runs = []
        for budget in (4, 4, 6, 0, 6):
            stats = {}
            record = list(predict_with_library(found, tiny_model, db, stats=stats, max_windows=budget, top_k=10))[0]
            runs.append((stats["reused"], record["top"]))
    assert [reused for reused, _ in runs] == [0, 1, 0, 0, 1]
    assert runs[0][1] != runs[2][1]  # another budget, another answer: it was not reused


def test_predict_and_tag_take_max_windows(tiny_model_file, long_track, tmp_path):
    from typer.testing import CliRunner

    from genrekit.apps.cli.main import app

    runner = CliRunner()
    tops = []
    for budget in ("2", "0"):
        result = runner.invoke(app, ["predict", str(long_track), "--model", str(tiny_model_file), "-f", "json",
                                     "--top-k", "10", "--max-windows", budget])
        assert result.exit_code == 0, result.output
        tops.append(json.loads(result.stdout[result.stdout.index("{"):])["top"])
    assert tops[0] != tops[1]
    result = runner.invoke(app, ["predict", str(long_track), "--model", str(tiny_model_file), "-f", "json",
                                 "--max-windows", "2", "--segments"])
    assert len(json.loads(result.stdout[result.stdout.index("{"):])["segments"]) == 25
    result = runner.invoke(app, ["predict", str(long_track), "--max-windows", "-1"])
    assert result.exit_code == 2
    result = runner.invoke(app, ["tag", str(long_track), "--model", str(tiny_model_file), "--max-windows", "3",
                                 "--db", str(tmp_path / "tags.sqlite")])
    assert result.exit_code == 0, result.output


def test_the_service_takes_a_budget_per_request_and_a_default(tiny_model, long_track):
    from fastapi.testclient import TestClient

    from genrekit.apps.service.app import create_app

    data = long_track.read_bytes()
    with TestClient(create_app(tiny_model, max_windows=2, allowed_hosts=["testserver"])) as client:
        assert client.get("/v1/models").json()["limits"]["max_windows"] == 2

        def top(**params):
            response = client.post("/v1/predict", params={"top_k": 10, **params},
                                   files={"file": ("long.flac", io.BytesIO(data))})
            assert response.status_code == 200, response.text
            return response.json()["top"]

        assert top() == top(max_windows=2) != top(max_windows=0)
        assert client.post("/v1/predict", params={"max_windows": -1},
                           files={"file": ("long.flac", io.BytesIO(data))}).status_code == 422
