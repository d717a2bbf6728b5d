"""A fresh conveyor repository per test: the ``repo`` fixture of the plugin."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

# Variables that would point a test at another store, stack or server than its own repository's.
_FOREIGN_SETTINGS = ("CONVEYOR_STORE_URL", "CONVEYOR_STACK", "CONVEYOR_SERVER", "CONVEYOR_API_KEY", "CONVEYOR_PROFILE")


def _close_stores() -> None:
    # Imported here: this plugin loads in every test session, also where conveyor is not installed.
    from conveyor.client import close_stores

    close_stores()


@contextmanager
def fresh_repository(root: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Make ``root`` (created if missing) the conveyor repository of this process while the block runs.

    ``root`` becomes the working folder, goes first on ``sys.path`` (modules a
    test writes there import) and is named by ``CONVEYOR_REPOSITORY``;
    ``CONVEYOR_STORE_URL``, ``CONVEYOR_STACK`` and the server settings
    (``CONVEYOR_SERVER``, ``CONVEYOR_API_KEY``, ``CONVEYOR_PROFILE``) are unset. The metadata
    stores this process opened are closed before and after, so the
    repository's database is opened afresh and no file stays open behind it.
    ``monkeypatch`` undoes the rest when the test ends.
    """
    root.mkdir(parents=True, exist_ok=True)
    # What `conveyor init` makes: commands that only read or register never create a repository.
    (root / ".conveyor").mkdir(exist_ok=True)
    monkeypatch.setenv("CONVEYOR_REPOSITORY", str(root))
    for name in _FOREIGN_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(root)
    monkeypatch.syspath_prepend(str(root))
    _close_stores()
    try:
        yield root
    finally:
        _close_stores()
