"""Fixtures of conveyor-dagster's tests: every test gets its own conveyor repository."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))  # dagster_test_pipelines


def forget_stores() -> None:
    """Close the stores conveyor keeps open per URL, so the next test opens its own."""
    from conveyor import _repository

    for store in _repository._stores.values():
        store.close()
    _repository._stores.clear()


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh conveyor repository in a temporary folder, which is also the working folder."""
    root = tmp_path / "repo"
    root.mkdir()
    monkeypatch.setenv("CONVEYOR_REPOSITORY", str(root))
    (root / ".conveyor").mkdir()
    for name in ("CONVEYOR_STORE_URL", "CONVEYOR_STACK"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(root)
    forget_stores()
    yield root
    forget_stores()


@pytest.fixture
def canary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A file that the payloads of dagster_test_pipelines create if anything runs them."""
    path = tmp_path / "canary"
    monkeypatch.setenv("CONVEYOR_CANARY", str(path))
    return path
