"""The beets plugin in a real beets library: a temporary BEETSDIR, `beet import` of gtzan-mini
clips (copied into the library), `beet genrekit`, `beet ls`, auto on import, `beet write`.

Every `beet` runs as its own process, as a user runs it, with this checkout's src/ first on the
path (so beets finds this beetsplug/genrekit.py). The tiny test model keeps it quick; styles need
the default model.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

beets = pytest.importorskip("beets", reason="the beets extra (pip install 'genrekit[beets]') is not installed")

from genrekit.apps.cli.main import main  # noqa: E402
from genrekit.apps.library.genre_tags import read_genres  # noqa: E402

pytestmark = pytest.mark.slow

SRC = Path(__file__).resolve().parents[1] / "src"
CLIPS = ["blues/blues.00000.flac", "classical/classical.00000.flac", "hiphop/hiphop.00000.flac",
         "metal/metal.00001.flac"]
TITLES = sorted([Path(clip).stem for clip in CLIPS] + ["silence"])


class Beets:
    """A beets library in a temporary BEETSDIR; ``run(*args)`` is ``beet ARGS``."""

    def __init__(self, root: Path, settings: str):
        self.root = root
        self.music = root / "music"
        root.mkdir()
        (root / "config.yaml").write_text(
            f"directory: {self.music}\nlibrary: {root / 'library.db'}\nplugins: [genrekit]\n"
            f"paths:\n  singleton: $title\n{settings}", encoding="utf-8")

    def run(self, *args, check=True):
        env = {**os.environ, "BEETSDIR": str(self.root), "HOME": str(self.root),
               "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
        done = subprocess.run([sys.executable, "-m", "beets", *args], env=env, capture_output=True, text=True,
                              timeout=600)
        if check:
            assert done.returncode == 0, done.stdout + done.stderr
        return done

    def ls(self, template, *query):
        out = self.run("ls", "-f", template, *query).stdout
        return [line.split("\t") for line in out.splitlines()]


@pytest.fixture
def clips(gtzan_mini, tmp_path):
    """Copies of a few clips with a title each (beets names the library files after it); the
    metal clip already has a genre; ``silence.flac`` is silent (no genre to give)."""
    import mutagen
    import numpy as np
    import soundfile as sf

    folder = tmp_path / "incoming"
    folder.mkdir()
    for clip in CLIPS:
        path = folder / Path(clip).name
        shutil.copyfile(gtzan_mini / clip, path)
        audio = mutagen.File(path)
        audio["title"] = path.stem
        if clip.startswith("metal"):
            audio["genre"] = "Old Genre"
        audio.save()
    sf.write(folder / "silence.flac", np.zeros(22050 * 5, np.float32), 22050)
    audio = mutagen.File(folder / "silence.flac")
    audio["title"] = "silence"
    audio.save()
    return folder


def make_beets(tmp_path, settings):
    return Beets(tmp_path / "beets", settings)


def genrekit_predict(capsys, *args):
    """``genrekit predict ARGS -f jsonl`` records by file name."""
    with pytest.raises(SystemExit) as exit_info:
        main(["predict", *map(str, args), "-f", "jsonl"])
    out, err = capsys.readouterr()
    assert exit_info.value.code == 0, err
    return {Path(record["path"]).stem: record for record in map(json.loads, out.splitlines())}


def test_beet_genrekit_stores_what_genrekit_predict_says(tmp_path, clips, tiny_model_file, capsys):
    lib = make_beets(tmp_path, f"import:\n  copy: yes\n  write: no\ngenrekit:\n  model: {tiny_model_file}\n")
    lib.run("import", "-A", "-s", "-q", str(clips))
    assert sorted(p.stem for p in lib.music.iterdir()) == TITLES
    first = lib.run("genrekit")
    assert first.stderr.count("genrekit: ") == len(TITLES), first.stderr
    assert "genrekit: silent: " in first.stderr

    stored = {row[0]: row[1:] for row in lib.ls("$title\t$genrekit_genre\t$genrekit_confidence\t$genrekit_not_music")}
    expected = genrekit_predict(capsys, lib.music, "--model", tiny_model_file)
    assert sorted(stored) == sorted(expected) == TITLES
    assert expected["silence"]["genre"] is None and stored["silence"][0] == ""
    for title, (genre, confidence, not_music) in stored.items():
        assert genre == (expected[title]["genre"] or "")
        assert float(confidence) == pytest.approx(expected[title]["confidence"], abs=5e-4)
        assert not_music == "False"
    # a query picks items; the confidence is a number to beets
    assert len(lib.ls("$title", "genrekit_confidence:0..1")) == len(TITLES)

    # stored results are not computed again, unless -f
    again = lib.run("genrekit")
    assert "genrekit: " not in again.stderr
    forced = lib.run("genrekit", "-f", "blues")
    assert forced.stderr.count("genrekit: ") == 1
    # nothing asked beets to set a genre: the files are as imported
    assert read_genres(lib.music / "metal.00001.flac") == ["Old Genre"]
    assert read_genres(lib.music / "blues.00000.flac") == []


def test_auto_on_import_writes_mapped_genres_into_the_files(tmp_path, clips, tiny_model_file, capsys):
    predicted = genrekit_predict(capsys, clips, "--model", tiny_model_file)
    excluded = predicted["blues.00000"]["genre"]
    names = {label: f"My {label}" for label in {r["genre"] for r in predicted.values()} - {excluded, None}}
    genre_map = tmp_path / "names.toml"
    genre_map.write_text("".join(f'{label} = "{text}"\n' for label, text in names.items())
                         + f"{excluded} = false\n", encoding="utf-8")
    lib = make_beets(tmp_path, "import:\n  copy: yes\n  write: yes\n"
                               f"genrekit:\n  model: {tiny_model_file}\n  auto: yes\n  write_genre: yes\n"
                               f"  min_confidence: 0.0\n  genre_map: {genre_map}\n")
    lib.run("import", "-A", "-s", "-q", str(clips))

    rows = {row[0]: row[1:] for row in lib.ls("$title\t$genrekit_genre\t$genres")}
    assert sorted(rows) == TITLES
    for title, (genre, genres) in rows.items():
        assert genre == (predicted[title]["genre"] or "")
        on_file = read_genres(lib.music / f"{title}.flac")
        if title == "silence":  # no genre to give
            assert genres == "" and on_file == []
        elif title == "metal.00001":  # it had a genre: kept (keep_existing)
            assert genres == "Old Genre" and on_file == ["Old Genre"]
        elif genre == excluded:  # the map says never to write this label
            assert genres == "" and on_file == []
        else:
            assert genres == names[genre] and on_file == [names[genre]]


def test_beet_write_puts_the_genres_set_by_the_plugin_into_the_files(tmp_path, clips, tiny_model_file):
    lib = make_beets(tmp_path, f"import:\n  copy: yes\n  write: no\ngenrekit:\n  model: {tiny_model_file}\n"
                               "  write_genre: yes\n  min_confidence: 0.0\n  keep_existing: no\n")
    lib.run("import", "-A", "-s", "-q", str(clips))
    lib.run("genrekit")
    rows = {row[0]: row[1] for row in lib.ls("$title\t$genres")}
    assert sorted(rows) == TITLES and rows.pop("silence") == "" and all(rows.values())
    assert read_genres(lib.music / "metal.00001.flac") == ["Old Genre"]  # import.write is off: not yet
    assert rows["metal.00001"] != "Old Genre"  # keep_existing: no replaces it in the library
    lib.run("write")
    for title, genres in rows.items():
        assert read_genres(lib.music / f"{title}.flac") == [genres]


@pytest.mark.parametrize("genre_map, message", [
    ("hiphopp = 'Hip Hop'\n", "unknown label 'hiphopp'"),
    ("hiphop = 3\n", "'hiphop' must be a text or false, not int 3"),
    ("hiphop = \n", "not valid TOML"),
])
def test_bad_genre_map_is_one_error_line(tmp_path, clips, tiny_model_file, genre_map, message):
    names = tmp_path / "names.toml"
    names.write_text(genre_map, encoding="utf-8")
    lib = make_beets(tmp_path, f"import:\n  copy: yes\n  write: no\ngenrekit:\n  model: {tiny_model_file}\n"
                               f"  write_genre: yes\n  genre_map: {names}\n")
    lib.run("import", "-A", "-s", "-q", str(clips))
    done = lib.run("genrekit", check=False)
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0] and str(names) in errors[0], done.stderr
    assert "Traceback" not in done.stderr


def test_a_file_that_cannot_be_decoded_is_one_error_and_the_rest_is_classified(tmp_path, clips, tiny_model_file):
    lib = make_beets(tmp_path, f"import:\n  copy: yes\n  write: no\ngenrekit:\n  model: {tiny_model_file}\n")
    lib.run("import", "-A", "-s", "-q", str(clips))
    (lib.music / "classical.00000.flac").write_bytes(b"fLaC" + b"\0" * 100)  # broken after import
    done = lib.run("genrekit", check=False)
    assert done.returncode == 1 and "1 item could not be classified" in done.stderr
    assert "classical.00000.flac" in done.stderr and "Traceback" not in done.stderr
    assert sorted(row[0] for row in lib.ls("$title", "genrekit_confidence:0..1")) == [
        "blues.00000", "hiphop.00000", "metal.00001", "silence"]


def test_styles_with_the_default_model(tmp_path, clips, capsys):
    lib = make_beets(tmp_path, "import:\n  copy: yes\n  write: no\n")
    lib.run("import", "-A", "-s", "-q", str(clips / "hiphop.00000.flac"))
    lib.run("genrekit", "--styles", "hiphop")
    (row,) = lib.ls("$genrekit_genre\t$genrekit_styles", "hiphop")
    expected = genrekit_predict(capsys, lib.music / "hiphop.00000.flac", "--styles")["hiphop.00000"]
    assert row == [expected["genre"], "; ".join(s["style"] for s in expected["styles"])]
    assert expected["styles"]  # the check means something: the clip has styles


def test_max_windows_is_passed_to_genrekit(tmp_path, clips, tiny_model_file, capsys):
    import inspect

    from genrekit.inference.predict import predict_audio

    if "max_windows" not in inspect.signature(predict_audio).parameters:
        pytest.skip("this genrekit has no window budget (max_windows) yet")
    lib = make_beets(tmp_path, f"import:\n  copy: yes\n  write: no\ngenrekit:\n  model: {tiny_model_file}\n"
                               "  max_windows: 2\n")
    lib.run("import", "-A", "-s", "-q", str(clips))
    lib.run("genrekit")
    stored = {row[0]: row[1:] for row in lib.ls("$title\t$genrekit_genre\t$genrekit_confidence")}
    expected = genrekit_predict(capsys, lib.music, "--model", tiny_model_file, "--max-windows", "2")
    for title, (genre, confidence) in stored.items():
        assert genre == (expected[title]["genre"] or "")  # silence.flac has no genre
        assert float(confidence) == pytest.approx(expected[title]["confidence"], abs=5e-4)
