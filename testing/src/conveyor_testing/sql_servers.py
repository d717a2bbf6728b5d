"""Real MariaDB and PostgreSQL servers for the test suites: the fixtures.

Each server is started once per pytest session (:mod:`conveyor_testing.mariadb`,
:mod:`conveyor_testing.postgres`), in its own temporary data directory,
listening on 127.0.0.1 only, on a free port, as a child that dies with the
test process (:mod:`conveyor_testing.processes`). The fixtures hand out
SQLAlchemy URLs:

* ``mariadb_url`` / ``postgres_url``: one empty database for the session.
* ``fresh_mariadb_url`` / ``fresh_postgres_url``: a new, uniquely named empty
  database for every test that asks (migration tests need a blank schema).

Tests that use them carry the ``integration`` marker (and ``mysql`` or ``postgres``).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

from conveyor_testing._sql import SqlServer
from conveyor_testing.mariadb import start_mariadb
from conveyor_testing.postgres import start_postgres

__all__ = [
    "SqlServer",
    "fresh_mariadb_url",
    "fresh_postgres_url",
    "mariadb_server",
    "mariadb_url",
    "postgres_server",
    "postgres_url",
    "start_mariadb",
    "start_postgres",
]


@pytest.fixture(scope="session")
def mariadb_server() -> Iterator[SqlServer]:
    """A MariaDB server for the whole session (see :class:`SqlServer`)."""
    server = start_mariadb()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[SqlServer]:
    """A PostgreSQL server for the whole session (see :class:`SqlServer`)."""
    server = start_postgres()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def mariadb_url(mariadb_server: SqlServer) -> str:
    """``mysql+pymysql://`` URL of an empty database, shared by the session."""
    return mariadb_server.url()


@pytest.fixture(scope="session")
def postgres_url(postgres_server: SqlServer) -> str:
    """``postgresql+psycopg://`` URL of an empty database, shared by the session."""
    return postgres_server.url()


@pytest.fixture
def fresh_mariadb_url(mariadb_server: SqlServer) -> Iterator[str]:
    """URL of a new empty MariaDB database, just for this test."""
    name = mariadb_server.create_database()
    yield mariadb_server.url(name)
    mariadb_server.drop_database(name)


@pytest.fixture
def fresh_postgres_url(postgres_server: SqlServer) -> Iterator[str]:
    """URL of a new empty PostgreSQL database, just for this test."""
    name = postgres_server.create_database()
    yield postgres_server.url(name)
    postgres_server.drop_database(name)


if __name__ == "__main__":  # pragma: no cover - manual smoke check
    for starter in (start_mariadb, start_postgres):
        srv = starter()
        print(srv.url(), f"ready in {srv.startup_seconds:.1f} s", file=sys.stderr)
        srv.stop()
