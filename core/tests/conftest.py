"""Shared fixtures of core's tests: every test gets its own repository."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# tests_support sits beside this file; the unit and integration folders import it.
sys.path.insert(0, str(Path(__file__).parent))

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = REPO_ROOT / "examples" / "conformance"


def _forget_stores() -> None:
    from conveyor import _repository

    for store in _repository._stores.values():
        store.close()
    _repository._stores.clear()


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh conveyor repository in a temporary folder, which is also the working folder."""
    monkeypatch.setenv("CONVEYOR_REPOSITORY", str(tmp_path))
    from tests_support import init_repository

    init_repository(tmp_path)
    for name in ("CONVEYOR_STORE_URL", "CONVEYOR_STACK"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))  # modules a test writes there import
    _forget_stores()
    yield tmp_path
    _forget_stores()


@pytest.fixture
def examples_path(monkeypatch: pytest.MonkeyPatch) -> Path:
    """``examples/conformance`` on sys.path, for importing the conformance pipelines."""
    monkeypatch.syspath_prepend(str(EXAMPLES))
    return EXAMPLES
