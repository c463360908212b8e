"""The package's shape: imports point one way (import-linter's layers contract in pyproject.toml),
no import cycle between modules (imports inside functions count), no module over 700 lines,
and the command line loads no torch."""

import subprocess
import sys
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "genrekit"
MAX_LINES = 700


def test_layers_contract_holds():
    import logging

    from importlinter.cli import lint_imports

    loggers = [logger for logger in logging.root.manager.loggerDict.values() if isinstance(logger, logging.Logger)]
    enabled = [logger for logger in loggers if not logger.disabled]
    try:
        assert lint_imports(config_filename=str(ROOT / "pyproject.toml")) == 0
    finally:
        for logger in enabled:  # import-linter's logging.config call disables the loggers that exist
            logger.disabled = False


def _cycles(graph) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index, low, on_stack, stack, found, counter = {}, {}, set(), [], [], [0]
    for root in sorted(graph.modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter[0]
                    counter[0] += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.find_modules_directly_imported_by(child)))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_import_cycle_between_modules():
    graph = grimp.build_graph("genrekit", exclude_type_checking_imports=True)
    assert _cycles(graph) == []


def test_cycle_finder_finds_a_cycle():
    graph = grimp.ImportGraph()
    for module in ("a", "b", "c"):
        graph.add_module(module)
    graph.add_import(importer="a", imported="b")
    graph.add_import(importer="b", imported="c")
    graph.add_import(importer="c", imported="a")
    assert _cycles(graph) == [["a", "b", "c"]]


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_module_size(path):
    assert len(path.read_text(encoding="utf-8").splitlines()) <= MAX_LINES


def test_subpackages_follow_the_data():
    packages = {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    assert {"audio", "features", "models", "inference", "data", "evaluation", "training", "experiments",
            "apps"} <= packages


def test_command_line_imports_no_torch():
    code = "import sys, genrekit.apps.cli; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_beets_plugin_uses_the_public_api_only():
    """beetsplug/genrekit.py (the apps layer, in effect) imports genrekit's public names only:
    ``genrekit``'s ``__all__`` and ``genrekit.apps.library``'s, and no other genrekit module."""
    import ast

    import genrekit
    import genrekit.apps.library

    public = {"genrekit": set(genrekit.__all__), "genrekit.apps.library": set(genrekit.apps.library.__all__)}
    plugin = ROOT / "src" / "beetsplug" / "genrekit.py"
    tree = ast.parse(plugin.read_text(encoding="utf-8"))
    used = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            used += [(alias.name, None) for alias in node.names if alias.name.split(".")[0] == "genrekit"]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "genrekit":
            used += [(node.module, alias.name) for alias in node.names]
    assert used, "the plugin imports genrekit somewhere"
    for module, name in used:
        assert module in public, f"{module} is not a public genrekit module"
        assert name is None or name in public[module], f"{module}.{name} is not public"
    attributes = {node.attr for node in ast.walk(tree)
                  if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "genrekit"}
    assert attributes <= public["genrekit"]
    assert len(plugin.read_text(encoding="utf-8").splitlines()) <= MAX_LINES
