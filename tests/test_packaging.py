"""What a user gets from ``pip install genrekit``: the wheel built from this tree holds what it must
(assets, the default model and its musicnn backbone, licences, the beets plugin once it exists)
and nothing it must not (tests, caches); installed into a fresh environment without the
``musicnn`` package and without the source tree, it predicts a clip offline, as the source tree
does. ``genrekit --version`` names the bundled model.

The wheel is built with ``python -m build --no-isolation`` (the setuptools of this environment)
from a copy of the tree, caches included, so that the build cannot touch the checkout. CI also
builds with isolation, runs ``twine check`` and installs the wheel with its dependencies from the
package index into a fresh Python 3.13 (``.ci/release-check``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from genrekit.models.files import default_model_id
from genrekit.version import __version__

ROOT = Path(__file__).resolve().parents[1]
WHEEL_MUST_HOLD = [
    "genrekit/__init__.py",
    "genrekit/__main__.py",
    "genrekit/assets/models/default.json",
    "genrekit/assets/models/default.safetensors",
    "genrekit/assets/musicnn/MSD_musicnn.safetensors",
    "genrekit/assets/musicnn-LICENSE.md",
    "genrekit/assets/gtzan-artists.csv",
    "genrekit/assets/splits/gtzan/fault-filtered-test.txt",
    "genrekit/apps/service/web/index.html",
    "genrekit-{version}.dist-info/licenses/LICENSE",
    "genrekit-{version}.dist-info/licenses/src/genrekit/assets/musicnn-LICENSE.md",
    "genrekit-{version}.dist-info/entry_points.txt",
]
BEETS_PLUGIN = "beetsplug/genrekit.py"  # once src/beetsplug exists
TOP_LEVEL = ("genrekit/", "beetsplug/", "genrekit-")


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, Path]:
    """sdist and wheel of a copy of this tree (the wheel built from the sdist, as pip would)."""
    pytest.importorskip("build", reason="the dev extra's `build` is not installed")
    work = tmp_path_factory.mktemp("build")
    source = work / "genrekit"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE", "CHANGELOG.md", "MANIFEST.in"):
        shutil.copy2(ROOT / name, source / name)
    shutil.copytree(ROOT / "src", source / "src", ignore=shutil.ignore_patterns("*.egg-info"))
    done = subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(work / "dist"), str(source)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    wheels, sdists = sorted((work / "dist").glob("*.whl")), sorted((work / "dist").glob("*.tar.gz"))
    assert len(wheels) == len(sdists) == 1, list((work / "dist").iterdir())
    return {"wheel": wheels[0], "sdist": sdists[0]}


def test_wheel_holds_assets_and_licences_and_nothing_else(built):
    names = set(zipfile.ZipFile(built["wheel"]).namelist())
    expected = [name.format(version=__version__) for name in WHEEL_MUST_HOLD]
    if (ROOT / "src" / "beetsplug").is_dir():
        expected.append(BEETS_PLUGIN)
    assert not [name for name in expected if name not in names]
    modules = {path.relative_to(ROOT / "src").as_posix() for path in (ROOT / "src" / "genrekit").rglob("*.py")}
    assert not modules - names, "modules missing from the wheel"
    assert not [name for name in names if not name.startswith(TOP_LEVEL)]
    unwanted = ("__pycache__", ".pyc", ".egg-info", "tests/", "conftest.py", ".pytest_cache")
    assert not [name for name in names if any(part in name for part in unwanted)]
    # beetsplug is beets' namespace package: a plugin that shipped its __init__.py would replace beets' own
    assert "beetsplug/__init__.py" not in names
    metadata = zipfile.ZipFile(built["wheel"]).read(f"genrekit-{__version__}.dist-info/METADATA").decode()
    assert "Requires-Python: <3.14,>=3.11" in metadata or "Requires-Python: >=3.11,<3.14" in metadata
    assert "Requires-Dist: musicnn" not in metadata


def test_sdist_holds_the_sources_and_no_caches(built):
    import tarfile

    with tarfile.open(built["sdist"]) as sdist:
        names = [name.split("/", 1)[1] for name in sdist.getnames() if "/" in name]
    for name in ("pyproject.toml", "README.md", "LICENSE", "CHANGELOG.md",
                 "src/genrekit/assets/musicnn/MSD_musicnn.safetensors"):
        assert name in names
    assert not [name for name in names if "__pycache__" in name or name.endswith(".pyc")]


def _shadow_site_packages(folder: Path) -> Path:
    """This environment's third-party packages as links, without genrekit and musicnn: the
    dependencies of a fresh environment, without installing PyTorch and the rest again."""
    folder.mkdir()
    site = Path(sysconfig.get_paths()["purelib"])
    for entry in site.iterdir():
        name = entry.name.lower()
        if name.startswith(("genrekit", "musicnn", "__editable__", "_virtualenv")) or name.endswith(".pth"):
            continue
        (folder / entry.name).symlink_to(entry)
    return folder


@pytest.mark.slow
def test_wheel_predicts_offline_without_musicnn(built, tmp_path):
    """A fresh venv holding only the wheel (dependencies linked in, ``musicnn`` left out), run away
    from the source tree with no network: predict gives the source tree's answer, and the models
    that need ``musicnn`` say how to install it."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    deps = _shadow_site_packages(tmp_path / "deps")
    # a path line adds the dependencies; an import line makes any network connection fail
    (site / "zz_test_deps.pth").write_text(
        f"{deps}\nimport socket; socket.socket.connect = lambda *a, **k: (_ for _ in ()).throw(OSError('offline'))\n")

    work = tmp_path / "work"
    work.mkdir()
    rng = np.random.default_rng(7)
    t = np.arange(10 * 22050) / 22050
    clip = work / "clip.flac"
    sf.write(clip, 0.3 * np.sin(2 * np.pi * 196 * t) * (1 + np.sin(2 * np.pi * 3 * t)) / 2
             + 0.02 * rng.standard_normal(t.size), 22050)
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTHON", "GENREKIT_", "PIP_"))}
    env.update(HOME=str(work), GENREKIT_CACHE_DIR=str(work / "cache"), PYTHONNOUSERSITE="1")
    install = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
                              "--no-index", "--no-compile", "-q", str(built["wheel"])],
                             capture_output=True, text=True, env=env, timeout=300)
    assert install.returncode == 0, install.stderr[-2000:]

    def genrekit(*args):
        return subprocess.run([venv / "bin" / "genrekit", *args], capture_output=True, text=True,
                              cwd=work, env=env, timeout=600)

    where = subprocess.run([python, "-c", "import genrekit, importlib.util as u; "
                            "print(genrekit.__file__); print(u.find_spec('musicnn'))"],
                           capture_output=True, text=True, cwd=work, env=env, check=True).stdout.split()
    assert Path(where[0]).is_relative_to(site) and where[1] == "None"

    version = genrekit("--version")
    assert version.returncode == 0 and version.stdout.strip() == f"genrekit {__version__} (default model {default_model_id()})"
    predicted = genrekit("-q", "predict", str(clip), "--format", "json")
    assert predicted.returncode == 0, predicted.stderr
    installed = json.loads(predicted.stdout)
    here = subprocess.run([sys.executable, "-m", "genrekit", "-q", "predict", str(clip), "--format", "json"],
                          capture_output=True, text=True, timeout=600)
    assert here.returncode == 0, here.stderr
    assert installed == json.loads(here.stdout)
    assert not (work / "cache").exists() or not any((work / "cache").rglob("*.safetensors"))

    other = genrekit("tags", str(clip), "--model", "MTT_musicnn")
    assert other.returncode == 1 and "Traceback" not in other.stderr
    assert "MTT_musicnn not found: install them with `pip install --no-deps musicnn==0.1.0`" in other.stderr


def test_supported_pythons_agree():
    """pyproject's requires-python and classifiers, ./run's list and the running Python agree."""
    import re

    from packaging.specifiers import SpecifierSet

    project = __import__("tomllib").loads((ROOT / "pyproject.toml").read_text())["project"]
    minors = re.search(r"^supported=\(([0-9 ]+)\)", (ROOT / "run").read_text(), re.M).group(1).split()
    versions = [f"3.{minor}" for minor in minors]
    specifier = SpecifierSet(project["requires-python"])
    assert all(f"{version}.0" in specifier for version in versions)
    assert f"3.{int(min(minors)) - 1}.0" not in specifier and f"3.{int(max(minors)) + 1}.0" not in specifier
    assert sorted(c.rsplit(" ", 1)[1] for c in project["classifiers"] if re.search(r"Python :: 3\.\d+$", c)) == sorted(versions)
    assert "{}.{}.{}".format(*sys.version_info[:3]) in specifier


@pytest.mark.parametrize("python, says", [("3.9", "PYTHON=3.9 is not Python 3.11, 3.12 or 3.13"),
                                          ("/bin/false", "PYTHON=/bin/false is not Python 3.11, 3.12 or 3.13"),
                                          ("python3.12", "PYTHON=python3.12: no such Python on PATH or in pyenv")])
def test_run_refuses_an_unsupported_python(tmp_path, python, says):
    env = dict(os.environ, PYTHON=python, GENREKIT_VENV=str(tmp_path / "venv"), PATH="/usr/bin:/bin",
               PYENV_ROOT=str(tmp_path / "no-pyenv"))
    if python == "python3.12" and shutil.which(python, path=env["PATH"]):
        pytest.skip("python3.12 is in /usr/bin here: this case needs a supported Python that is missing")
    done = subprocess.run(["bash", str(ROOT / "run"), "--version"], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 2 and done.stderr.splitlines() == [f"genrekit: {says}"]
    assert not (tmp_path / "venv").exists()


def test_version_names_the_bundled_model(capsys):
    import hashlib

    from genrekit.apps.cli import main

    models = ROOT / "src" / "genrekit" / "assets" / "models"
    name = json.loads((models / "default.json").read_text())["name"]
    digest = hashlib.sha256((models / "default.safetensors").read_bytes()).hexdigest()
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out == f"genrekit {__version__} (default model {name} sha256:{digest[:12]})\n"
