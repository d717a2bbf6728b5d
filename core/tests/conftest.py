"""Core's tests: ``repo`` (over the store ``CONVEYOR_TEST_STORE`` picks) and ``examples_path``.

``examples_path`` comes from conveyor_testing's plugin; ``repo`` is the
plugin's fresh repository, with its metadata store picked by
``CONVEYOR_TEST_STORE``: ``sql`` (default: the repository's SQLite file),
``rest`` (a conveyor server on 127.0.0.1 over SQLite) or ``rest-postgres``
(a server over PostgreSQL). With a server, every test starts from an empty
store, with an admin's API key in ``CONVEYOR_API_KEY``. Tests that read the
SQL store's own files or tables are marked ``sql_store`` and say so when the
suite runs over REST.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor_testing import fresh_repository

# tests_support sits beside this file; the unit and integration folders import it.
sys.path.insert(0, str(Path(__file__).parent))

STORE = os.environ.get("CONVEYOR_TEST_STORE", "sql")
_SERVERS = {"rest": "conveyor_server", "rest-postgres": "conveyor_server_postgres"}
if STORE not in ("sql", *_SERVERS):
    raise pytest.UsageError(f"CONVEYOR_TEST_STORE={STORE!r}: use sql, rest or rest-postgres")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if STORE == "sql":
        return
    for item in items:
        marker = item.get_closest_marker("sql_store")
        if marker is not None:
            reason = marker.args[0] if marker.args else "it reads the SQL store directly"
            item.add_marker(pytest.mark.skip(reason=f"SQL store only ({STORE} run): {reason}"))


def _forget_secret_stores() -> None:
    from conveyor.secrets import _references

    for store in _references._stores.values():
        store.close()
    _references._stores.clear()


@pytest.fixture
def repo(
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> Iterator[Path]:
    """A fresh conveyor repository in a temporary folder, which is also the working folder."""
    # Never the developer's own profiles.
    monkeypatch.setenv("CONVEYOR_CONFIG_DIR", str(tmp_path_factory.mktemp("config")))
    _forget_secret_stores()
    with fresh_repository(tmp_path / "repo", monkeypatch) as root:
        if STORE in _SERVERS:
            server = request.getfixturevalue(_SERVERS[STORE])
            server.reset()
            monkeypatch.setenv("CONVEYOR_SERVER", server.url)
            monkeypatch.setenv("CONVEYOR_API_KEY", server.admin_key)
        yield root
    _forget_secret_stores()
