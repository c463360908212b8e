"""Your own genre names: ``genrekit tag --genre-map FILE.toml`` (label -> text, or false) and its checks.

The beets plugin's ``genre_map`` goes through the same function; tests/test_beets_plugin.py runs it
in a beets library.
"""

from types import SimpleNamespace

import pytest
from test_tagging import LIBRARY, LOW, band_model, library, master_library, run_tag  # noqa: F401 (fixtures)

from genrekit.apps.library.genre_names import load_genre_map
from genrekit.apps.library.genre_tags import EXCLUDED, WRITE, plan_tag_changes, read_genres
from genrekit.errors import UsageError

GTZAN = SimpleNamespace(labels=["blues", "classical", "hiphop", "rock"], gives_taggram=False)
WITH_STYLES = SimpleNamespace(labels=GTZAN.labels, gives_taggram=True)


def write_map(tmp_path, text):
    path = tmp_path / "genres.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_map_gives_text_or_none(tmp_path):
    path = write_map(tmp_path, 'hiphop = "Hip Hop"\nclassical = "Classical Music"\nrock = false\n')
    assert load_genre_map(path, GTZAN) == {"hiphop": "Hip Hop", "classical": "Classical Music", "rock": None}
    assert load_genre_map({"blues": "Delta"}, GTZAN) == {"blues": "Delta"}


def test_styles_may_be_mapped_for_a_model_that_gives_them(tmp_path):
    path = write_map(tmp_path, '"hard rock" = "Hard-Rock"\nrnb = false\n')
    assert load_genre_map(path, WITH_STYLES) == {"hard rock": "Hard-Rock", "rnb": None}
    with pytest.raises(UsageError, match="unknown labels 'hard rock', 'rnb'"):
        load_genre_map(path, GTZAN)


@pytest.mark.parametrize("text, message", [
    ('hiphopp = "Hip Hop"\n', "unknown label 'hiphopp' (the model's labels: blues, classical, hiphop, rock)"),
    ("hiphop = 3\n", "'hiphop' must be a text or false, not int 3"),
    ("hiphop = true\n", "'hiphop' must be a text or false, not true"),
    ('hiphop = "  "\n', "'hiphop' must be a text or false, not an empty text"),
    ('[hiphop]\nname = "Hip Hop"\n', "'hiphop' must be a text or false, not a table"),
    ('hiphop = ["Hip Hop"]\n', "'hiphop' must be a text or false, not a list"),
    ('hiphop = "Hip Hop\n', "not valid TOML"),
])
def test_bad_map_is_one_line_naming_the_file(tmp_path, text, message):
    path = write_map(tmp_path, text)
    with pytest.raises(UsageError) as error:
        load_genre_map(path, GTZAN)
    assert str(error.value).startswith(f"{path}: ") and message in str(error.value)
    assert "\n" not in str(error.value)


def test_every_problem_is_on_the_one_line(tmp_path):
    path = write_map(tmp_path, 'jaz = "Jazz"\nblues = 1\nrock = false\n')
    with pytest.raises(UsageError) as error:
        load_genre_map(path, GTZAN)
    assert "unknown label 'jaz'" in str(error.value) and "'blues' must be" in str(error.value)


def test_missing_map_file(tmp_path):
    with pytest.raises(UsageError, match="genre map not found"):
        load_genre_map(tmp_path / "nope.toml", GTZAN)


def test_plan_uses_the_map_for_genres_and_styles(tmp_path):
    path = tmp_path / "song.flac"
    import numpy as np
    import soundfile as sf

    sf.write(path, np.zeros(1600, np.float32), 16000)
    names = {"hiphop": "Hip Hop", "rock": None, "hard rock": None, "soul": "Soul Music"}
    record = {"path": str(path), "genre": "hiphop", "confidence": 0.9,
              "styles": [{"style": "soul", "score": 0.5}, {"style": "hard rock", "score": 0.4},
                         {"style": "funk", "score": 0.3}]}
    (change,) = plan_tag_changes([record], styles=True, genre_map=names)
    assert change.action == WRITE and change.new == ["Hip Hop", "Soul Music", "Funk"]
    # a style that names the label again is left out, whatever the map calls the label
    hip_hop = {**record, "styles": [{"style": "Hip-Hop", "score": 0.9}, *record["styles"]]}
    (change,) = plan_tag_changes([hip_hop], styles=True, genre_map=names)
    assert change.new == ["Hip Hop", "Soul Music", "Funk"]
    (change,) = plan_tag_changes([{**record, "genre": "rock"}], genre_map=names)
    assert change.action == EXCLUDED and change.new is None and "excludes 'rock'" in change.reason


def test_cli_writes_the_mapped_names_and_never_an_excluded_label(library, band_model, capsys, tmp_path):
    path = write_map(tmp_path, 'low = "Deep Sound"\nhigh = false\n')
    code, out, _ = run_tag(capsys, library, "--write", "--genre-map", path)
    assert code == 0
    rows = {line.split("  ")[0]: line for line in out.splitlines()}
    for name, (freq, _, genre) in LIBRARY.items():
        if genre:  # had a genre: kept
            assert read_genres(library / name) == genre
        elif freq == LOW:
            assert read_genres(library / name) == ["Deep Sound"], name
        else:
            assert read_genres(library / name) == [] and "excluded" in rows[name], name


def test_cli_bad_map_is_a_usage_error_before_anything_is_done(library, band_model, capsys, tmp_path):
    path = write_map(tmp_path, 'lo = "Deep Sound"\n')
    code, out, err = run_tag(capsys, library, "--write", "--genre-map", path)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "unknown label 'lo'" in err and str(path) in err
    assert band_model == []  # nothing was classified
    code, _, err = run_tag(capsys, library, "--undo", "--genre-map", path)
    assert code == 2 and "--genre-map does not go with --undo" in err
