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


# --- docs in the code -------------------------------------------------------------------------
# The numpydoc share: what part of the public functions and classes below ``apps/`` carry the
# numpydoc sections their signature and body call for. Precisely:
#
# * modules: every ``src/genrekit/**/*.py`` outside ``apps/``;
# * public objects: module-level functions and classes whose name has no leading underscore, and
#   the methods (``def`` directly in the class body) of those classes whose name has no leading
#   underscore (so ``__init__`` and other dunders are not counted: numpydoc documents the
#   constructor's parameters on the class); ``@overload`` stubs are not counted;
# * documented: it has a docstring, and that docstring has a numpydoc section (a title underlined
#   with dashes) for each of:
#   - ``Parameters``: a function or method with a parameter besides ``self``/``cls``; a class whose
#     ``__init__`` takes one, or whose body declares annotated fields (dataclasses, NamedTuples:
#     ``Parameters`` or ``Attributes``);
#   - ``Returns`` or ``Yields``: a function or method (not a property) whose body (nested
#     functions and classes excluded) has ``return VALUE`` (VALUE not ``None``) or ``yield``;
#   - ``Raises``: a function or method whose body (nested functions and classes excluded) raises
#     an exception by name (``raise X(...)``; a bare re-raise does not count).
#
# ``python tests/test_architecture.py`` prints the share and the objects that miss a section.
MIN_NUMPYDOC_SHARE = 0.70
_SECTION = r"^[ \t]*{}[ \t]*\r?\n[ \t]*-{{3,}}[ \t]*$"


def _own_nodes(node):
    """The nodes of a function's body, nested functions, lambdas and classes left out."""
    import ast

    stack = list(ast.iter_child_nodes(node))
    while stack:
        child = stack.pop()
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            continue
        yield child
        stack.extend(ast.iter_child_nodes(child))


def _decorator_names(node) -> set[str]:
    import ast

    names = set()
    for decorator in node.decorator_list:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        if isinstance(target, ast.Attribute):
            names.add(target.attr)
        elif isinstance(target, ast.Name):
            names.add(target.id)
    return names


def _sections_needed(node, is_method: bool) -> list[tuple[str, ...]]:
    """The numpydoc sections (each a tuple of acceptable titles) that ``node`` must carry."""
    import ast

    needed = []
    if isinstance(node, ast.ClassDef):
        init = next((item for item in node.body if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef))
                     and item.name == "__init__"), None)
        fields = any(isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name)
                     and not item.target.id.startswith("_") for item in node.body)
        init_args = init is not None and len(_arguments(init, is_method=True)) > 0
        if fields or init_args:
            needed.append(("Parameters", "Attributes"))
        return needed
    if _arguments(node, is_method):
        needed.append(("Parameters",))
    own = list(_own_nodes(node))
    is_property = bool({"property", "cached_property", "setter"} & _decorator_names(node))
    returns = any(isinstance(n, ast.Return) and n.value is not None
                  and not (isinstance(n.value, ast.Constant) and n.value.value is None) for n in own)
    yields = any(isinstance(n, (ast.Yield, ast.YieldFrom)) for n in own)
    if (returns or yields) and not is_property:
        needed.append(("Returns", "Yields"))
    if any(isinstance(n, ast.Raise) and n.exc is not None for n in own):
        needed.append(("Raises",))
    return needed


def _arguments(node, is_method: bool) -> list[str]:
    args = node.args
    names = [a.arg for a in args.posonlyargs + args.args + args.kwonlyargs]
    names += [a.arg for a in (args.vararg, args.kwarg) if a is not None]
    if is_method and names and names[0] in ("self", "cls") and "staticmethod" not in _decorator_names(node):
        names = names[1:]
    return names


def public_objects(package: Path = PACKAGE):
    """Yield ``(qualified name, missing sections)`` for each public object below ``apps/``."""
    import ast
    import re

    for path in sorted(package.rglob("*.py")):
        relative = path.relative_to(package)
        if relative.parts[0] == "apps":
            continue
        module = ".".join(relative.with_suffix("").parts)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        candidates = []
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and not node.name.startswith("_"):
                candidates.append((node.name, node, False))
                if isinstance(node, ast.ClassDef):
                    candidates += [(f"{node.name}.{item.name}", item, True) for item in node.body
                                   if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef))
                                   and not item.name.startswith("_") and "overload" not in _decorator_names(item)]
        for name, node, is_method in candidates:
            if "overload" in _decorator_names(node):
                continue
            docstring = ast.get_docstring(node) or ""
            missing = ["docstring"] if not docstring else []
            for titles in _sections_needed(node, is_method):
                if docstring and not any(re.search(_SECTION.format(t), docstring, re.M) for t in titles):
                    missing.append("/".join(titles))
            yield f"{module}.{name}", missing


def numpydoc_share(package: Path = PACKAGE) -> tuple[float, int, list[tuple[str, list[str]]]]:
    """The share of public objects below ``apps/`` with every numpydoc section they need."""
    objects = list(public_objects(package))
    lacking = [(name, missing) for name, missing in objects if missing]
    return 1 - len(lacking) / len(objects), len(objects), lacking


def test_numpydoc_share_stays_above_the_floor():
    share, total, lacking = numpydoc_share()
    assert total > 100, "the walk found the package's public objects"
    assert share >= MIN_NUMPYDOC_SHARE, (
        f"{share:.0%} of {total} public objects below apps/ have their numpydoc sections "
        f"(at least {MIN_NUMPYDOC_SHARE:.0%} wanted); e.g. {lacking[:5]}")


def test_numpydoc_check_sees_missing_sections(tmp_path):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "good.py").write_text(
        'def f(x):\n    """Double.\n\n    Parameters\n    ----------\n    x : float\n\n'
        '    Returns\n    -------\n    float\n    """\n    return 2 * x\n\n\n'
        'def _private(x):\n    return x\n', encoding="utf-8")
    (package / "bad.py").write_text(
        'class C:\n    """A thing."""\n\n    def __init__(self, a):\n        self.a = a\n\n'
        '    def g(self):\n        """Fail."""\n        raise ValueError("no")\n', encoding="utf-8")
    found = dict(public_objects(package))
    assert found == {"good.f": [], "bad.C": ["Parameters/Attributes"], "bad.C.g": ["Raises"]}


if __name__ == "__main__":
    _share, _total, _lacking = numpydoc_share()
    for _name, _missing in _lacking:
        print(f"{_name}: {', '.join(_missing)}")
    print(f"numpydoc share below apps/: {_share:.1%} of {_total} public objects "
          f"({_total - len(_lacking)} complete, {len(_lacking)} lacking)")
