"""The one direction imports run (../shared/ARCHITECTURE.md), checked on every module's
source, function-level imports included:

    ops <- supernet <- nas.search <- nas.run <- search.py, retrain.py, lwnas (nas.cli)
    ops <- models <- nas.run;  data (stands alone) <- nas.run
"""
from __future__ import annotations

import ast
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
    "nas.pictures": {"ops", "supernet", "models", "nas.search", "nas.complexity", "nas.train"},
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
        if _within(name, own) or name.split(".")[0] == own.split(".")[0] == "data":
            continue
        assert any(_within(name, package) for package in allowed), (
            f"{module} imports {name}; {key} may import only {sorted(allowed) or 'nothing'} "
            "of the project")


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
