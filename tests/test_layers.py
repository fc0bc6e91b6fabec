"""The package's layers point one way: __main__ -> cli -> demo -> study -> methods -> training / evaluation / report
-> models / tasks -> config / io / lock / distributed -> errors. A module never imports a higher layer, not even inside
a function, and packages of one layer do not import each other."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "retain"

LAYERS = {
    "retain.errors": 0,
    "retain.config": 1, "retain.io": 1, "retain.lock": 1, "retain.distributed": 1,
    "retain.models": 2, "retain.tasks": 2,
    "retain.training": 3, "retain.evaluation": 3, "retain.report": 3,
    "retain.methods": 4,
    "retain.study": 5,
    "retain.demo": 6,
    "retain.cli": 7,
    "retain.__main__": 8,
}


def home(module: str) -> str | None:
    """The layer entry a module belongs to (`retain.training.loop` -> `retain.training`)."""
    parts = module.split(".")
    for i in range(len(parts), 0, -1):
        if ".".join(parts[:i]) in LAYERS:
            return ".".join(parts[:i])
    return None


def imports(path: Path) -> list[tuple[int, str, list[str]]]:
    """(line, imported module, names) of every absolute import in a file, at any depth."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name, []) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module, [a.name for a in node.names]))
    return found


def modules() -> list[tuple[str, Path]]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")
        if module != "retain":  # the package root is the public API: it names everything, lazily
            out.append((module, path))
    return out


def violations() -> list[str]:
    bad = []
    for module, path in modules():
        mine = home(module)
        assert mine is not None, f"{module} is in no layer: add it to LAYERS"
        for line, target, names in imports(path):
            if target == "retain":
                if names != ["__version__"]:
                    bad.append(f"{path.name}:{line} imports the package root ({names})")
                continue
            theirs = home(target)
            if theirs is None or theirs == mine:
                continue
            if LAYERS[theirs] > LAYERS[mine]:
                bad.append(f"{module}:{line} imports {target}, a higher layer")
            elif LAYERS[theirs] == LAYERS[mine]:
                bad.append(f"{module}:{line} imports {target}, a sibling of the same layer")
    return bad


def test_no_module_imports_a_higher_layer():
    assert violations() == []


@pytest.mark.parametrize("source, expected", [
    ("from retain.methods import make_method\n", "a higher layer"),  # training -> methods
    ("def f():\n    import retain.study.run\n", "a higher layer"),  # even inside a function
    ("from retain.evaluation.runner import evaluate\n", "sibling"),  # training -> evaluation
])
def test_the_check_catches_an_upward_import(source, expected, monkeypatch, tmp_path):
    """The check itself can fail: an upward import planted in a training module is reported."""
    planted = PACKAGE / "training" / "loop.py"
    original = imports

    def with_plant(path):
        found = original(path)
        if path == planted:
            found += [(999, *_parsed(source))]
        return found

    monkeypatch.setattr(sys.modules[__name__], "imports", with_plant)
    assert any(expected in v and ":999 " in v for v in violations())


def _parsed(source: str) -> tuple[str, list[str]]:
    node = next(n for n in ast.walk(ast.parse(source)) if isinstance(n, (ast.Import, ast.ImportFrom)))
    if isinstance(node, ast.Import):
        return node.names[0].name, []
    return node.module, [a.name for a in node.names]
