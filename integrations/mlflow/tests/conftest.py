"""Fixtures of conveyor-mlflow's tests: a repository per test, a real MLflow server (conveyor_testing)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor_testing import fresh_repository


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh conveyor repository in a temporary folder (the working folder, on sys.path), with no MLflow settings.

    MLflow's own settings would send the steps' runs elsewhere; telemetry stays off in every process the test starts.
    """
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    with fresh_repository(tmp_path / "repo", monkeypatch) as root:
        yield root
