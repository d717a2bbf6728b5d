"""Fixtures of conveyor-airflow's tests (``repo`` comes from conveyor_testing's plugin)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))  # airflow_test_pipelines


@pytest.fixture
def canary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A file that the payloads of airflow_test_pipelines create if anything runs them."""
    path = tmp_path / "canary"
    monkeypatch.setenv("CONVEYOR_CANARY", str(path))
    return path
