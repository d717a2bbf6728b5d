"""Pytest plugin (entry point ``pytest11``) exposing conveyor's real-server fixtures.

Fixtures:

* SQL: ``mariadb_server``, ``mariadb_url``, ``fresh_mariadb_url``,
  ``postgres_server``, ``postgres_url``, ``fresh_postgres_url``.
* S3: ``s3_server``, ``s3_endpoint``, ``s3_bucket``.
* Docker: whatever :mod:`conveyor_testing.docker_env` provides.
* conveyor server: ``conveyor_server``, ``conveyor_server_postgres``,
  ``conveyor_server_factory`` (:mod:`conveyor_testing.server`).

Missing servers fail the tests that need them with the hint
``run: bash scripts/bootstrap.sh``; nothing is skipped.
"""

from __future__ import annotations

import pytest

from conveyor_testing.s3_server import s3_bucket, s3_endpoint, s3_server
from conveyor_testing.server import conveyor_server, conveyor_server_factory, conveyor_server_postgres
from conveyor_testing.sql_servers import (
    fresh_mariadb_url,
    fresh_postgres_url,
    mariadb_server,
    mariadb_url,
    postgres_server,
    postgres_url,
)

try:
    from conveyor_testing import docker_env
except ImportError:  # the Docker fixtures are optional until that module lands
    docker_env = None

__all__ = [
    "conveyor_server",
    "conveyor_server_factory",
    "conveyor_server_postgres",
    "fresh_mariadb_url",
    "fresh_postgres_url",
    "mariadb_server",
    "mariadb_url",
    "postgres_server",
    "postgres_url",
    "s3_bucket",
    "s3_endpoint",
    "s3_server",
]

MARKERS = {
    "mysql": "needs a real MariaDB/MySQL server (fixtures mariadb_url, fresh_mariadb_url)",
    "postgres": "needs a real PostgreSQL server (fixtures postgres_url, fresh_postgres_url)",
    "s3": "needs a real S3 server (fixtures s3_endpoint, s3_bucket)",
    "docker": "needs a Docker daemon, registry and base image",
    "server": "starts a real conveyor server (fixtures conveyor_server, conveyor_server_factory)",
}


def pytest_configure(config: pytest.Config) -> None:
    """Register the markers and the Docker fixtures."""
    for name, help_text in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {help_text}")
    # Registered as a plugin of its own rather than imported name by name, so
    # its fixtures and hooks are picked up whatever they are called.
    if docker_env is not None and not config.pluginmanager.is_registered(docker_env):
        config.pluginmanager.register(docker_env, "conveyor_testing.docker_env")
