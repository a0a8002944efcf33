"""The one direction imports run (../shared/ARCHITECTURE.md), checked on every module's
source, function-level imports included:

    ops <- supernet <- nas.search <- nas.run <- search.py, retrain.py, lwnas (nas.cli)
    ops <- models <- nas.run;  data (stands alone) <- nas.run

and no import cycle inside any package, subpackages included; the tests of a package that
stands alone import no package it may not.
"""
from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROJECT = ("ops", "supernet", "models", "data", "nas", "search", "retrain")

#: package (a path prefix, dotted) -> project packages its modules may import (besides itself)
ALLOWED = {
    "ops": set(),
    "supernet": {"ops"},
    "models": {"ops"},
    "data": set(),
    # inside data: the interfaces a data set implements are a leaf; files and arrays know nothing
    # of data sets (augmentation reads its settings' dataclasses)
    "data.interfaces": set(),
    "data.io": {"data.errors"},
    "data.transforms": {"data.presets"},
    "nas.losses": set(),
    "nas.metrics": set(),
    "nas.inference": set(),
    "nas.presets": set(),
    "nas.complexity.counting": set(),
    "nas.complexity.device": set(),
    # the papers' tables count the real op library and networks
    "nas.complexity.paper_tables": {"nas.complexity", "ops", "models"},
    "nas.complexity.__init__": {"nas.complexity"},
    "nas.complexity.__main__": {"nas.cli"},
    "nas.train": {"ops", "nas.losses", "nas.metrics", "nas.inference"},
    "nas.search": {"ops", "supernet", "nas.train", "nas.losses", "nas.complexity",
                   "nas.presets"},
    "nas.pictures": {"ops", "supernet", "models", "nas.search", "nas.complexity", "nas.train", "nas.metrics"},
    "nas.run": {"ops", "supernet", "models", "data", "nas"},
    "nas.cli": {"nas", "data", "models"},
    "nas.__init__": set(),
}


def _modules():
    for package in ("ops", "supernet", "models", "data", "nas"):
        for path in sorted((ROOT / package).rglob("*.py")):
            yield ".".join(path.relative_to(ROOT).with_suffix("").parts), path


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            # ``from nas import losses`` imports nas.losses
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return {name for name in names if name.split(".")[0] in PROJECT}


def _rule(module: str) -> tuple[str, set[str]]:
    matches = [key for key in ALLOWED if module == key or module.startswith(key + ".")]
    assert matches, f"{module}: no import rule covers it; add it to ALLOWED"
    key = max(matches, key=len)
    return key, ALLOWED[key]


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


@pytest.mark.parametrize("module, path", list(_modules()), ids=lambda v: str(v))
def test_imports_run_one_way(module, path):
    key, allowed = _rule(module)
    own = key.rsplit(".", 1)[0] if key.endswith(("__init__", "__main__")) else key
    for name in _imports(path):
        if _within(name, own):
            continue
        assert any(_within(name, package) for package in allowed), (
            f"{module} imports {name}; {key} may import only {sorted(allowed) or 'nothing'} "
            "of the project")


@pytest.mark.parametrize("package", ["ops", "supernet", "data"])
def test_the_tests_of_a_package_that_stands_alone_import_what_it_may(package):
    allowed = ALLOWED[package] | {package}
    for path in sorted((ROOT / "tests" / package).rglob("*.py")):
        for name in _imports(path):
            assert any(_within(name, other) for other in allowed), (
                f"{path.relative_to(ROOT)} imports {name}; a test of {package} may import only "
                f"{sorted(allowed)} of the project (a test that needs more belongs under tests/ of that package)")


# -- no import cycle inside a package ------------------------------------------------------------


@functools.cache
def _module_files() -> dict[str, Path]:
    """Every project module by dotted name; a package by its own name (its __init__.py)."""
    files = {}
    for package in ("ops", "supernet", "models", "data", "nas"):
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return files


@functools.cache
def _runs(module: str) -> frozenset[str]:
    """The project modules importing `module` runs: each module or package it imports (function-level
    and relative imports included), and the packages whose __init__.py runs first, but for its
    own packages (they are running already when it is imported)."""
    files = _module_files()
    path = files[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    named = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            named |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([node.module] if node.module else []))
            # ``from data.io import png`` imports the module data.io.png; ``from data import X`` the package
            named |= {f"{base}.{alias.name}" if f"{base}.{alias.name}" in files else base for alias in node.names}
    runs = set()
    for name in named:
        while name and name not in files:  # ``import data.check`` names a module; a name in it is not one
            name = name.rpartition(".")[0]
        if not name:
            continue
        parts = name.split(".")
        runs |= {name} | {".".join(parts[:i]) for i in range(1, len(parts))
                          if not _within(module, ".".join(parts[:i]))}
    return frozenset(runs - {module})


def _cycle(modules: set[str], runs=_runs) -> list[str]:
    """One import cycle among `modules` (its modules in import order, the first repeated), or [];
    `runs(module)`: what importing it runs."""
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> list[str]:
        if module in path:
            return path[path.index(module):] + [module]
        if module in done:
            return []
        for imported in sorted(runs(module) & modules):
            cycle = visit(imported, path + [module])
            if cycle:
                return cycle
        done.add(module)
        return []

    for module in sorted(modules):
        cycle = visit(module, [])
        if cycle:
            return cycle
    return []


@pytest.mark.parametrize("package", sorted(name for name, path in _module_files().items()
                                           if path.name == "__init__.py"))
def test_no_import_cycle_inside_a_package(package):
    cycle = _cycle({module for module in _module_files() if _within(module, package)})
    assert not cycle, f"import cycle inside {package}: {' -> '.join(cycle)}; move the shared part below both"


def test_the_cycle_check_finds_a_cycle_and_what_imports_run():
    graph = {"p": frozenset(), "p.a": frozenset({"p.b"}), "p.b": frozenset({"p.c"}), "p.c": frozenset({"p.a"})}
    assert _cycle(set(graph), graph.__getitem__) == ["p.a", "p.b", "p.c", "p.a"]
    assert _cycle({"p", "p.a", "p.b"}, graph.__getitem__) == []
    # a package's __init__ runs before its module; relative imports resolve
    assert {"data.nnunet", "data.nnunet.source"} <= _runs("data.sources")
    assert "data.nnunet" not in _runs("data.nnunet.reader")  # its own package runs already
    assert "nas.complexity.counting" in _runs("nas.complexity")


def test_nothing_imports_the_entry_scripts():
    for module, path in _modules():
        assert not {"search", "retrain"} & {n.split(".")[0] for n in _imports(path)}, module
    for path in (ROOT / "tests").rglob("*.py"):
        assert not {"search", "retrain"} & {n.split(".")[0] for n in _imports(path)}, path


def test_entry_scripts_are_thin():
    for script in ("search.py", "retrain.py"):
        tree = ast.parse((ROOT / script).read_text())
        functions = [node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)]
        assert not functions, f"{script} defines {[f.name for f in functions]}; put it in nas.cli"


def _module_imports(module: str, path: Path) -> set[str]:
    """The project modules ``module`` imports, relative imports resolved (``from .x import y``
    inside ``nas.run``: ``nas.run.x`` and ``nas.run.x.y``)."""
    package = module.rsplit(".", 1)[0]
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = (package.rsplit(".", node.level - 1)[0] if node.level > 1 else package) if node.level else ""
            origin = ".".join(part for part in (base, node.module) if part)
            names |= {origin} | {f"{origin}.{alias.name}" for alias in node.names}
    return names


def test_a_command_module_imports_no_other_command():
    """A command module of ``nas.run``, the module that defines a function of
    ``nas.run.COMMANDS`` (what a ``lwnas`` subcommand calls), imports no other command module:
    the steps two commands share live in modules of their own (ARCHITECTURE.md)."""
    import nas.run

    commands = {command.__module__ for command in nas.run.COMMANDS}
    assert len(commands) == len(nas.run.COMMANDS)  # one command per module
    for module in sorted(commands):
        path = ROOT / Path(*module.split(".")).with_suffix(".py")
        others = {name for name in _module_imports(module, path)
                  if any(_within(name, command) for command in commands - {module})}
        assert not others, f"{module} imports the command module(s) {sorted(others)}"
