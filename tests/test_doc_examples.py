"""The Examples sections of genrekit's docstrings run, offline and quickly, and show what they
claim: every module of ``src/genrekit`` with a ``>>>`` line is run through doctest (the same as
``pytest --doctest-modules src/genrekit/...``), and the public entry points must have examples."""

import doctest
import importlib
import tempfile
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "genrekit"
MODULES = sorted(
    ".".join(("genrekit", *path.relative_to(PACKAGE).with_suffix("").parts)).removesuffix(".__init__")
    for path in PACKAGE.rglob("*.py") if ">>>" in path.read_text(encoding="utf-8")
)
# the public API a caller starts from: each shows a run in its docstring
MUST_HAVE_EXAMPLES = [
    ("genrekit.inference.model", "load_model"),
    ("genrekit.inference.model", "GenreModel.predict"),
    ("genrekit.features.musicnn.embedding", "musicnn_embeddings"),
]


@pytest.mark.parametrize("module_name", MODULES)
def test_docstring_examples_run(module_name, tmp_path, monkeypatch):
    # examples write their files with tempfile.mkdtemp(): keep them in pytest's tmp_path
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    module = importlib.import_module(module_name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    tests = [test for test in finder.find(module, module_name) if test.examples]
    assert tests, f"{module_name} has '>>>' but doctest finds no example"
    for test in tests:
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {module_name}"


@pytest.mark.parametrize("module_name, qualname", MUST_HAVE_EXAMPLES)
def test_entry_points_have_examples(module_name, qualname):
    target = importlib.import_module(module_name)
    for part in qualname.split("."):
        target = getattr(target, part)
    examples = doctest.DocTestParser().get_examples(target.__doc__ or "")
    assert len(examples) >= 2, f"{module_name}.{qualname} has no runnable Examples section"
