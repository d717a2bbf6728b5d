"""conveyor-dagster's tests: helpers in dagster_test_pipelines and definitions_file, ``repo`` from conveyor_testing."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))  # dagster_test_pipelines, definitions_file, hostile_pipelines


@pytest.fixture
def canary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A file that the payloads of dagster_test_pipelines create if anything runs them."""
    path = tmp_path / "canary"
    monkeypatch.setenv("CONVEYOR_CANARY", str(path))
    return path
