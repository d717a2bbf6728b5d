"""Fixtures of conveyor-mlflow's tests: a repository per test, a real MLflow server (conveyor_testing)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh conveyor repository in a temporary folder, which is also the working folder."""
    from conveyor.client import close_stores

    root = tmp_path / "repo"
    root.mkdir()
    monkeypatch.setenv("CONVEYOR_REPOSITORY", str(root))
    for name in ("CONVEYOR_STORE_URL", "CONVEYOR_STACK", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.chdir(root)
    monkeypatch.syspath_prepend(str(root))  # user code written into the repository imports
    close_stores()
    yield root
    close_stores()
