"""Styles: the genre-like MSD tags of a file (``--styles``) in the Python API, JSON, the table,
the service and genre tag writing."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from genrekit.apps.library.genre_names import style_tag_value
from genrekit.apps.library.genre_tags import plan_tag_changes, read_genres
from genrekit.features.musicnn.network import MSD_TAGS
from genrekit.inference.taggram import STYLE_TAGS, STYLE_THRESHOLD, file_styles


@pytest.fixture(scope="module")
def model():
    from genrekit import load_model

    return load_model()


@pytest.fixture
def metal_clip(gtzan_mini, tmp_path):
    path = tmp_path / "metal.flac"
    shutil.copy(sorted((gtzan_mini / "metal").glob("*.flac"))[0], path)
    path.chmod(0o644)  # the shared data is read-only, and genrekit never tags a read-only file
    return path


def test_styles_are_genre_like_msd_tags_above_the_threshold():
    assert set(STYLE_TAGS) <= set(MSD_TAGS)
    assert {"electronic", "folk", "soul", "funk", "punk", "House", "ambient", "rnb", "hard rock",
            "heavy metal", "indie"} <= set(STYLE_TAGS)
    assert not {"00s", "80s", "sad", "female vocalists", "guitar"} & set(STYLE_TAGS)
    taggram = np.full((2, 50), 0.01)
    taggram[:, MSD_TAGS.index("folk")] = [0.5, 0.3]
    taggram[:, MSD_TAGS.index("punk")] = [0.3, 0.2]
    taggram[:, MSD_TAGS.index("sad")] = 0.9  # a mood, never a style
    taggram[:, MSD_TAGS.index("soul")] = [STYLE_THRESHOLD - 0.01, STYLE_THRESHOLD - 0.02]
    styles = file_styles(taggram)
    assert [s for s, _ in styles] == ["folk", "punk"] and styles[0][1] == pytest.approx(0.4)
    assert file_styles(taggram, weights=np.array([0.0, 1.0]))[0] == ("folk", pytest.approx(0.3))


def test_python_api_styles(model, gtzan_mini):
    clip = sorted((gtzan_mini / "metal").glob("*.flac"))[0]
    plain = model.predict(str(clip))
    assert plain.styles is None and "styles" not in plain.to_dict()
    result = model.predict(str(clip), styles=True)
    assert result.styles and all(s in STYLE_TAGS and v >= STYLE_THRESHOLD for s, v in result.styles)
    scores = [v for _, v in result.styles]
    assert scores == sorted(scores, reverse=True)
    assert result.genre == plain.genre and result.confidence == pytest.approx(plain.confidence)
    record = result.to_dict()
    assert record["styles"] == [{"style": s, "score": round(v, 6)} for s, v in result.styles]


def test_styles_need_a_taggram_model(tiny_model_file):
    from genrekit import load_model
    from genrekit.errors import UsageError

    with pytest.raises(UsageError, match="MSD_musicnn taggram"):
        load_model(tiny_model_file).predict(np.zeros(22050 * 3, np.float32) + 0.1, 22050, styles=True)


def run(capsys, *argv):
    from genrekit.apps.cli.main import main

    with pytest.raises(SystemExit) as stopped:
        main(list(map(str, argv)))
    out, err = capsys.readouterr()
    return stopped.value.code, out, err


def test_cli_predict_styles_json_and_table(capsys, metal_clip, tiny_model_file):
    code, out, _ = run(capsys, "predict", metal_clip, "--styles", "-f", "json")
    record = json.loads(out)
    assert code == 0 and record["styles"] and set(record["styles"][0]) == {"style", "score"}
    code, out, _ = run(capsys, "predict", metal_clip, "--styles")
    assert code == 0 and "styles: " + record["styles"][0]["style"] in out
    code, out, _ = run(capsys, "predict", metal_clip, "-f", "json")
    assert "styles" not in json.loads(out)
    code, _, err = run(capsys, "predict", metal_clip, "--styles", "-m", tiny_model_file)
    assert code == 2 and "styles need" in err


def test_service_styles(gtzan_mini, model, tiny_model_file):
    from fastapi.testclient import TestClient

    from genrekit import load_model
    from genrekit.apps.service.app import create_app

    clip = sorted((gtzan_mini / "metal").glob("*.flac"))[0]
    with TestClient(create_app(model, allowed_hosts=["testserver"])) as client:
        assert client.get("/v1/models").json()["models"][0]["styles"] is True
        for query, has in (("?styles=true", True), ("", False)):
            with open(clip, "rb") as fh:
                body = client.post("/v1/predict" + query, files={"file": (clip.name, fh, "audio/flac")}).json()
            assert ("styles" in body) == has and (not has or body["styles"])
    with TestClient(create_app(load_model(tiny_model_file), allowed_hosts=["testserver"])) as client:
        with open(clip, "rb") as fh:
            response = client.post("/v1/predict?styles=true", files={"file": (clip.name, fh, "audio/flac")})
        assert response.status_code == 400 and "styles" in response.json()["error"]["message"]


def test_plan_writes_styles_as_additional_genres(tmp_path):
    import soundfile as sf

    path = tmp_path / "song.flac"
    sf.write(path, np.zeros(1000, np.float32), 16000)
    prediction = {"path": str(path), "genre": "hiphop", "confidence": 0.9,
                  "styles": [{"style": "Hip-Hop", "score": 0.6}, {"style": "rnb", "score": 0.3},
                             {"style": "hard rock", "score": 0.2}]}
    [change] = plan_tag_changes([prediction], styles=True)
    assert change.new == ["Hip-Hop", "R&B", "Hard Rock"] and change.action == "write"
    [change] = plan_tag_changes([prediction])
    assert change.new == ["Hip-Hop"]
    assert style_tag_value("folk") == "Folk" and style_tag_value("House") == "House"


def test_tag_write_styles(capsys, metal_clip, model):
    result = model.predict(str(metal_clip), styles=True)
    code, out, _ = run(capsys, "tag", metal_clip, "--write", "--styles", "--min-confidence", "0")
    assert code == 0
    genres = read_genres(metal_clip)
    assert genres[0] == result.genre.capitalize() and len(genres) >= 2, out
    probability = {genre: p for genre, p in result.top}
    other_genres = {g for g in model.labels if g != result.genre and probability.get(g, 0) < 0.25}
    assert genres[1:] == [style_tag_value(s) for s, _ in result.styles
                          if style_tag_value(s).casefold() != genres[0].casefold()
                          and s.casefold() not in other_genres][: len(genres) - 1]


def _planned(tmp_path, genre, top, styles, genres=None):
    import soundfile as sf

    path = tmp_path / "clip.flac"
    if not path.exists():
        sf.write(path, np.zeros(1000, np.float32), 16000)
    prediction = {"path": str(path), "genre": genre, "confidence": top[0][1],
                  "top": [{"genre": g, "probability": p} for g, p in top],
                  "styles": [{"style": s, "score": score} for s, score in styles]}
    [change] = plan_tag_changes([prediction], styles=True, genres=genres)
    return change.new


def test_a_style_naming_another_genre_is_not_written_beside_a_confident_genre(tmp_path):
    # the case that was written as "Classical; Jazz": MSD "jazz" at 0.24, jazz itself at 0.1 %
    assert _planned(tmp_path, "classical", [("classical", 0.997), ("jazz", 0.001)],
                    [("jazz", 0.24), ("easy listening", 0.22)]) == ["Classical", "Easy Listening"]
    # a toss-up between two genres keeps the second one
    assert _planned(tmp_path, "blues", [("blues", 0.39), ("jazz", 0.35)], [("jazz", 0.3)]) == ["Blues", "Jazz"]
    # the model's own labels decide what counts as a genre (rock is not one of these)
    assert _planned(tmp_path, "metal", [("metal", 0.9)], [("heavy metal", 0.4), ("rock", 0.3)],
                    genres=["metal", "speech"]) == ["Metal", "Heavy Metal", "Rock"]
    assert _planned(tmp_path, "metal", [("metal", 0.9)], [("heavy metal", 0.4), ("rock", 0.3)]) == ["Metal", "Heavy Metal"]
    assert _planned(tmp_path, "pop", [("pop", 0.8)], [("Hip-Hop", 0.3)]) == ["Pop"]
