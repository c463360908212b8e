"""Inputs that used to be taken silently are refused in one clear line: an empty API key, an undo
on a missing database, arrays whose shape means nothing, links that lead nowhere."""

import os
import warnings

import numpy as np
import pytest

from genrekit.errors import UsageError


def run_main(capsys, *args):
    from genrekit.apps.cli.main import main
    from genrekit.apps.console import set_verbosity

    capsys.readouterr()
    try:
        with pytest.raises(SystemExit) as exit_info:
            main(list(args))
    finally:
        set_verbosity(quiet=False, debug=False)
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


@pytest.mark.parametrize("key", ["", "   "])
def test_serve_refuses_an_empty_api_key(capsys, monkeypatch, key):
    import genrekit.apps.service.app as service_app

    started = []
    monkeypatch.setattr(service_app, "run_server", lambda *args, **kwargs: started.append(kwargs))
    code, _, err = run_main(capsys, "serve", "--api-key", key)
    assert code == 2 and not started
    assert err.count("\n") == 1 and err.startswith("error: --api-key is empty")


def test_serve_without_a_key_still_serves_openly(capsys, monkeypatch):
    import genrekit.apps.service.app as service_app

    started = []
    monkeypatch.setattr(service_app, "run_server", lambda *args, **kwargs: started.append(kwargs))
    monkeypatch.setenv("GENREKIT_API_KEY", "")  # an empty variable is no key, as in a shell
    code, _, _ = run_main(capsys, "serve")
    assert code == 0 and started[-1]["api_key"] is None


def test_undo_does_not_create_a_missing_database(capsys, tmp_path):
    library = tmp_path / "music"
    library.mkdir()
    missing = tmp_path / "MISSING.sqlite"
    code, _, err = run_main(capsys, "tag", str(library), "--undo", "--db", str(missing))
    assert code == 2 and err.count("\n") == 1 and "no such library database" in err
    assert not missing.exists() and not list(library.iterdir())
    code, _, err = run_main(capsys, "tag", str(library), "--undo")  # the default database, also missing
    assert code == 2 and not list(library.iterdir())


@pytest.fixture(scope="module")
def tiny_model(tiny_model_file):
    from genrekit.inference.model import load_model

    return load_model(tiny_model_file)


@pytest.mark.parametrize("audio, message", [
    (np.zeros((3, 3), np.float32), "channel axis"),
    ([0.0] * 66150, "not a list"),
    ((0.0,) * 66150, "not a tuple"),
    (np.zeros((0, 2), np.float32), "no samples"),
    (np.zeros((2, 0), np.float32), "no samples"),
])
def test_the_python_api_refuses_arrays_that_mean_nothing(tiny_model, audio, message):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no NumPy warning on the way to the error
        with pytest.raises(UsageError, match=message):
            tiny_model.predict(audio, sr=22050)


def test_the_python_api_still_takes_both_channel_layouts(tiny_model):
    stereo = np.zeros((2, 22050 * 3), np.float32)
    assert tiny_model.predict(stereo, sr=22050).duration == pytest.approx(3.0)
    assert tiny_model.predict(stereo.T, sr=22050).duration == pytest.approx(3.0)


def test_link_loops_are_reported_whatever_their_name(tmp_path, capsys, tiny_model_file):
    from genrekit.inference.batch import collect_audio_files

    os.symlink("self", tmp_path / "self")
    os.symlink("b", tmp_path / "a")
    os.symlink("a", tmp_path / "b")
    os.symlink("nowhere", tmp_path / "dangling")  # leads nowhere, but no audio name: not ours
    (tmp_path / "notes.txt").write_text("not audio")
    found = dict(collect_audio_files([tmp_path]))
    assert set(found) == {str(tmp_path / name) for name in ("self", "a", "b")}
    assert all("symbolic link loop" in problem for problem in found.values())
    code, _, err = run_main(capsys, "-q", "predict", str(tmp_path), "-m", str(tiny_model_file))
    assert code == 1 and err.count("symbolic link loop") == 3
