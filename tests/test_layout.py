"""The house plan: modules stay short and imports only run down the layers."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "stimuli"
# Lower layers never import higher ones; a module may import its own layer and those below.
LAYERS: tuple[tuple[str, ...], ...] = (
    (
        "io",
        "paths",
        "schema",
        "keys",
        "metrics",
        "console",
        "config",
        "augment",
        "env",
        "allocator",
        "__init__",
    ),
    ("data", "models", "store"),
    ("classifier", "training", "parallel"),
    ("teacher", "identity", "students", "synthesis"),
    ("privacy", "release", "report", "tracking"),
    ("pipeline", "evaluate", "third_party", "run", "audit"),
)
MAX_LINES = 320  # "about 300"


def layer_of(module: str) -> int:
    top = module.split(".")[1] if module.count(".") else "__init__"
    top = top.removesuffix(".py")
    for i, names in enumerate(LAYERS):
        if top in names:
            return i
    raise AssertionError(f"stimuli.{top} is in no layer of tests/test_layout.py")


def modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def dotted(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    return ".".join(rel.parts)


def imports(path: Path) -> list[str]:
    """Every `stimuli.*` module `path` imports, at any depth of the file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
            if node.module == "stimuli":
                names = [f"stimuli.{a.name}" for a in node.names]
            found += [n for n in names if n.startswith("stimuli")]
        elif isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.startswith("stimuli")]
    return found


@pytest.mark.parametrize("path", modules(), ids=lambda p: dotted(p))
def test_imports_run_down_the_layers(path: Path):
    here = dotted(path)
    mine = layer_of(here if here.count(".") else "stimuli.__init__")
    upward = [m for m in imports(path) if m != "stimuli" and layer_of(m) > mine]
    assert not upward, f"{here} (layer {mine}) imports from higher layers: {upward}"


@pytest.mark.parametrize("path", modules(), ids=lambda p: dotted(p))
def test_modules_stay_short(path: Path):
    n = len(path.read_text().splitlines())
    assert n <= MAX_LINES, f"{dotted(path)} has {n} lines; split it (at most {MAX_LINES})"


def test_release_and_report_never_reach_into_the_runner():
    for part in ("release", "report"):
        for path in (PACKAGE / part).rglob("*.py"):
            assert not [m for m in imports(path) if m.startswith("stimuli.pipeline")], path
