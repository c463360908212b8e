"""Only ``apps/`` prints: the layers below it report through ``logging`` (the ``genrekit`` logger
hierarchy) and progress reporters, so that a program embedding genrekit can route or silence them."""

import ast
import contextlib
import logging
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "genrekit"

#: Modules that talk to a terminal; only the apps layer may import them.
TERMINAL_MODULES = {"rich", "typer", "click"}
#: What a module may do with sys.stdout / sys.stderr without printing to them.
HARMLESS_STREAM_USES = {"flush", "fileno", "isatty"}


def _library_modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        if "apps" not in path.relative_to(PACKAGE).parts:
            yield path


def _printing(path: Path) -> list[str]:
    """What in ``path`` writes to the terminal: print(), terminal libraries, sys.stdout/stderr writes."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    found = []
    for node in ast.walk(tree):
        where = f"{path.relative_to(PACKAGE)}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("print", "breakpoint"):
            found.append(f"{where} {node.func.id}()")
        elif isinstance(node, ast.Import):
            found += [f"{where} import {a.name}" for a in node.names if a.name.split(".")[0] in TERMINAL_MODULES]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in TERMINAL_MODULES:
            found.append(f"{where} from {node.module} import ...")
        elif (isinstance(node, ast.Attribute) and node.attr in ("stdout", "stderr", "__stdout__", "__stderr__")
              and isinstance(node.value, ast.Name) and node.value.id == "sys"):
            use = parents.get(node)
            if not (isinstance(use, ast.Attribute) and use.attr in HARMLESS_STREAM_USES):
                found.append(f"{where} sys.{node.attr}" + (f".{use.attr}" if isinstance(use, ast.Attribute) else ""))
    return found


def test_no_module_below_apps_prints():
    offenders = [hit for path in _library_modules() for hit in _printing(path)]
    assert not offenders, "only genrekit.apps prints; below it use logging or genrekit.utils.track:\n" + "\n".join(offenders)


def test_the_scan_sees_each_kind_of_printing(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("import sys\nfrom rich.console import Console\nprint('x')\nsys.stderr.write('y')\n"
                      "out = sys.stdout\nsys.stderr.flush()\n")
    global PACKAGE
    saved, PACKAGE = PACKAGE, tmp_path
    try:
        hits = _printing(sample)
    finally:
        PACKAGE = saved
    assert len(hits) == 4, hits  # rich, print, the stderr write, the bare stdout; not the flush


def test_library_messages_go_to_the_genrekit_logger_hierarchy(caplog, tmp_path):
    from genrekit.data.datasets import Dataset, Track
    from genrekit.data.splits import split_tracks

    tracks = [Track(tmp_path / f"{label}{i}.wav", label, f"{label}{i}", split=split)
              for label in ("a", "b") for i, split in enumerate(("train", "train", "valid", "test"))]
    tracks.append(Track(tmp_path / "c0.wav", "c", "c0", split="test"))  # c: nothing to train on
    for track in tracks:
        track.path.write_bytes(b"")
    dataset = Dataset("x", tmp_path, tracks, ["a", "b", "c"], [])
    with caplog.at_level(logging.INFO, logger="genrekit"):
        split_tracks(dataset, {"method": "official"}, seed=0)
    assert any("no training tracks of c" in record.getMessage() for record in caplog.records)
    names = {record.name for record in caplog.records}
    assert names and all(name.startswith("genrekit.") for name in names), names


def test_progress_goes_to_the_reporter_a_caller_installs():
    from genrekit.utils import set_progress, track

    seen = []

    @contextlib.contextmanager
    def reporter(description, total):
        seen.append((description, total))
        yield lambda: seen.append("step")

    previous = set_progress(reporter)
    try:
        assert list(track(range(3), "counting", total=3)) == [0, 1, 2]
    finally:
        set_progress(previous)
    assert seen == [("counting", 3), "step", "step", "step"]


@pytest.mark.parametrize(("flags", "level"), [((), logging.INFO), (("-q",), logging.WARNING),
                                              (("--debug",), logging.DEBUG)])
def test_quiet_and_debug_set_the_log_level(flags, level, tmp_path):
    from genrekit.apps.cli.main import main
    from genrekit.apps.console import set_verbosity

    try:
        with pytest.raises(SystemExit):
            main([*flags, "cache", "info", "--cache-dir", str(tmp_path)])
        assert logging.getLogger("genrekit").level == level
    finally:
        set_verbosity(quiet=False, debug=False)


def test_a_warning_below_apps_reaches_the_terminal_as_one_line(capsys):
    from genrekit.apps.console import set_verbosity

    set_verbosity(quiet=True, debug=False)
    try:
        logging.getLogger("genrekit.data.cache").warning("feature cache [x] not written")
        logging.getLogger("genrekit.data.cache").info("not shown with -q")
    finally:
        set_verbosity(quiet=False)
    assert capsys.readouterr().err == "warning: feature cache [x] not written\n"
