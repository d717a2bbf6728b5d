"""The package's faces: complete sorted __all__, a cheap import, layers that point one way."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import conveyor
from conveyor_testing import assert_facade_complete

SRC = Path(conveyor.__file__).parent
PACKAGES = [
    "conveyor",
    "conveyor.ir",
    "conveyor.dsl",
    "conveyor.materializers",
    "conveyor.stores",
    "conveyor.stores.sql",
    "conveyor.stores.rest",
    "conveyor.server",
    "conveyor.server.dashboard",
    "conveyor.stack",
    "conveyor.alerters",
    "conveyor.runtime",
    "conveyor.orchestrators",
    "conveyor.client",
    "conveyor.secrets",
    "conveyor.cli",
    "conveyor.exceptions",
]


@pytest.mark.parametrize("name", PACKAGES)
def test_all_is_sorted_and_complete(name: str) -> None:
    assert_facade_complete(importlib.import_module(name))


def test_import_conveyor_loads_neither_pydantic_nor_sqlalchemy() -> None:
    code = "import sys, conveyor; from conveyor import step, pipeline; print(sorted(m for m in ('pydantic', 'sqlalchemy', 'yaml', 'fsspec') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# A module may import only from its own layer and the layers listed after it.
LAYERS = [
    ("conveyor.cli", "conveyor.server", "conveyor.client", "conveyor._launch"),
    ("conveyor.orchestrators", "conveyor.runtime", "conveyor._repository"),
    ("conveyor.stack", "conveyor.alerters"),
    ("conveyor.secrets",),
    ("conveyor.dsl", "conveyor.materializers", "conveyor.stores", "conveyor._source", "conveyor._notebook"),
    ("conveyor.ir", "conveyor.exceptions", "conveyor.constants"),
]


# Deliberate upward calls, each imported lazily: calling a pipeline runs it, so the
# DSL hands the traced pipeline to the launcher; a SQL store's secrets are read and
# written by conveyor.secrets, which holds the encryption keys; a server's secrets arrive as
# conveyor.secrets' records, masked like any other.
ALLOWED = {
    ("conveyor.dsl._pipeline", "conveyor._launch"),
    ("conveyor.stores._interface", "conveyor.secrets"),
    ("conveyor.stores.sql", "conveyor.secrets"),
    ("conveyor.stores.rest._secrets", "conveyor.secrets"),
}


def _layer(module: str) -> int | None:
    for i, names in enumerate(LAYERS):
        if any(module == n or module.startswith(n + ".") for n in names):
            return i
    return None


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return {m for m in found if m.startswith("conveyor")}


def test_layers_point_one_way() -> None:
    wrong = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC.parent).with_suffix("")
        module = ".".join(rel.parts).removesuffix(".__init__").removesuffix(".__main__")
        mine = _layer(module)
        if mine is None:
            continue
        for imported in _imports(path):
            theirs = _layer(imported)
            if theirs is not None and theirs < mine and (module, imported) not in ALLOWED:
                wrong.append(f"{module} imports {imported}")
    assert wrong == []


def test_the_ir_imports_nothing_else_from_conveyor() -> None:
    for path in (SRC / "ir").rglob("*.py"):
        assert {m for m in _imports(path) if not m.startswith("conveyor.ir")} == set(), path
