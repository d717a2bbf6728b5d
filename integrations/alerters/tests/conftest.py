"""Fixtures of conveyor-alerters' tests: a repository per test, as the working folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


def _forget_stores() -> None:
    from conveyor import _repository

    for store in _repository._stores.values():
        store.close()
    _repository._stores.clear()


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh conveyor repository in a temporary folder, which is also the working folder."""
    monkeypatch.setenv("CONVEYOR_REPOSITORY", str(tmp_path))
    for name in ("CONVEYOR_STORE_URL", "CONVEYOR_STACK"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    _forget_stores()
    yield tmp_path
    _forget_stores()
