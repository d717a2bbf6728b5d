"""Fixtures of conveyor-pandera's tests: a repository per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor_testing import fresh_repository


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh conveyor repository in a temporary folder, which is also the working folder and on sys.path."""
    with fresh_repository(tmp_path / "repo", monkeypatch) as root:
        yield root
