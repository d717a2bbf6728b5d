"""The adapter contract: every distribution outside core uses only conveyor's public names."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
OUTSIDE_CORE = sorted(
    p
    for pattern in ("adapters/*/src", "integrations/*/src", "plugins/*/src", "testing/src")
    for p in ROOT.glob(pattern)
)


def _private_conveyor_imports(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "conveyor" and any(p.startswith("_") for p in parts[1:]):
                found.append((node.lineno, name))
    return found


def test_there_are_distributions_to_check() -> None:
    assert {p.parent.name for p in OUTSIDE_CORE} >= {
        "airflow",
        "kubeflow",
        "prefect",
        "dagster",
        "_template",
        "docker",
        "data",
    }


@pytest.mark.parametrize("src", OUTSIDE_CORE, ids=lambda p: str(p.relative_to(ROOT)))
def test_only_public_conveyor_names_are_imported(src: Path) -> None:
    wrong = [
        f"{path.relative_to(ROOT)}:{line} imports {name}"
        for path in sorted(src.rglob("*.py"))
        for line, name in _private_conveyor_imports(path)
    ]
    assert wrong == []


def test_the_check_sees_a_private_import(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("from conveyor.stores._records import now\nimport conveyor._launch\nfrom conveyor import _x\n")
    found = [name for _, name in _private_conveyor_imports(module)]
    assert found == ["conveyor.stores._records", "conveyor.stores._records.now", "conveyor._launch", "conveyor._x"]
