"""Pytest plugin (entry point ``pytest11``): conveyor's test kit in every test session.

Fixtures:

* ``repo``: a fresh conveyor repository per test, in a temporary folder that
  is also the working folder and first on ``sys.path``
  (:func:`conveyor_testing.fresh_repository`); ``examples_path``: the
  conformance pipelines' folder on ``sys.path``.
* SQL: ``mariadb_server``, ``mariadb_url``, ``fresh_mariadb_url``,
  ``postgres_server``, ``postgres_url``, ``fresh_postgres_url``.
* S3: ``s3_server``, ``s3_endpoint``, ``s3_bucket``.
* Docker: ``docker_daemon``, ``registry``, ``base_image``.
* MLflow: ``mlflow_server``, ``mlflow_tracking_uri``, ``mlflow_auth_server`` (real ``mlflow server``s).
* HTTP: ``http_sink`` (a recording server), ``fake_slack`` (the Slack Web API
  endpoints the slack alerter uses), both on 127.0.0.1 in the test process.
* conveyor server: ``conveyor_server``, ``conveyor_server_postgres``,
  ``conveyor_server_short_leeway``, ``conveyor_server_factory`` (:mod:`conveyor_testing.server`).

Missing servers fail the tests that need them with the hint
``run: bash scripts/bootstrap.sh``; nothing is skipped. A test that needs a
server or an engine (one of the server fixtures above, or a server or engine
marker) must carry the ``integration`` marker, so that ``-m "not integration"``
runs with no server at all; collection stops with a usage error naming the
tests that do not. The markers themselves are registered in the root
``pyproject.toml``.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor_testing import docker_env
from conveyor_testing._repository import fresh_repository
from conveyor_testing.conformance import EXAMPLES
from conveyor_testing.http_sink import http_sink
from conveyor_testing.mlflow_server import mlflow_auth_server, mlflow_server, mlflow_tracking_uri
from conveyor_testing.s3_server import s3_bucket, s3_endpoint, s3_server
from conveyor_testing.server import (
    conveyor_server,
    conveyor_server_factory,
    conveyor_server_postgres,
    conveyor_server_short_leeway,
)
from conveyor_testing.slack_api import fake_slack
from conveyor_testing.sql_servers import (
    fresh_mariadb_url,
    fresh_postgres_url,
    mariadb_server,
    mariadb_url,
    postgres_server,
    postgres_url,
)

__all__ = [
    "SERVER_FIXTURES",
    "SERVER_MARKERS",
    "conveyor_server",
    "conveyor_server_factory",
    "conveyor_server_postgres",
    "conveyor_server_short_leeway",
    "examples_path",
    "fake_slack",
    "fresh_mariadb_url",
    "fresh_postgres_url",
    "http_sink",
    "mariadb_server",
    "mariadb_url",
    "mlflow_auth_server",
    "mlflow_server",
    "mlflow_tracking_uri",
    "postgres_server",
    "postgres_url",
    "pytest_collection_modifyitems",
    "pytest_configure",
    "pytest_unconfigure",
    "repo",
    "s3_bucket",
    "s3_endpoint",
    "s3_server",
]

SERVER_FIXTURES = frozenset(
    {
        "mariadb_server",
        "postgres_server",
        "s3_server",
        "docker_daemon",
        "registry",
        "base_image",
        "mlflow_server",
        "mlflow_auth_server",
        "conveyor_server",
        "conveyor_server_postgres",
        "conveyor_server_factory",
        "conveyor_server_short_leeway",
    }
)
"""Fixtures that start (or reach) a server: a test using any of them is an integration test."""
SERVER_MARKERS = frozenset(
    {"mysql", "postgres", "s3", "docker", "airflow", "kubeflow", "prefect", "dagster", "mlflow", "server"}
)
"""Markers that say a test needs a server or a real engine: such a test is an integration test."""


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh conveyor repository in a temporary folder, which is also the working folder and on sys.path."""
    with fresh_repository(tmp_path / "repo", monkeypatch) as root:
        yield root


@pytest.fixture
def examples_path(monkeypatch: pytest.MonkeyPatch) -> Path:
    """``examples/conformance`` on sys.path, for importing the conformance pipelines."""
    monkeypatch.syspath_prepend(str(EXAMPLES))
    return EXAMPLES


def pytest_configure(config: pytest.Config) -> None:
    """Register the Docker fixtures (a plugin of their own, so their fixtures are found whatever they are called)."""
    # A shell starts background jobs with SIGINT ignored, and children inherit that:
    # the tests that press Ctrl-C on a pipeline they started would see it ignored.
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if not config.pluginmanager.is_registered(docker_env):
        config.pluginmanager.register(docker_env, "conveyor_testing.docker_env")
    if _is_xdist_controller(config):
        # Made before the workers start, so they inherit it: what they share (see docker_env).
        shared = Path(tempfile.mkdtemp(prefix="conveyor-tests-"))
        os.environ[docker_env.ENV_SHARED_DIR] = str(shared)
        config.stash[_SHARED] = shared


def pytest_unconfigure(config: pytest.Config) -> None:
    """Stop what the xdist workers of this run shared (a Docker daemon one of them started)."""
    shared = config.stash.get(_SHARED, None)
    if shared is not None:
        docker_env.stop_shared_daemon(shared)
        os.environ.pop(docker_env.ENV_SHARED_DIR, None)
        shutil.rmtree(shared, ignore_errors=True)


_SHARED = pytest.StashKey[Path]()


def _is_xdist_controller(config: pytest.Config) -> bool:
    """Whether this process hands tests to pytest-xdist workers (``-n N``, N > 0)."""
    return bool(getattr(config.option, "numprocesses", None)) and not hasattr(config, "workerinput")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Refuse a test that needs a server or engine without the ``integration`` marker.

    Runs before ``-m`` deselects anything, so a unit-only run cannot start a
    server by accident.
    """
    unmarked = []
    for item in items:
        if item.get_closest_marker("integration") is not None:
            continue
        markers = {m.name for m in item.iter_markers()} & SERVER_MARKERS
        fixtures = set(getattr(item, "fixturenames", ())) & SERVER_FIXTURES
        if markers or fixtures:
            unmarked.append(f"{item.nodeid} ({', '.join(sorted(markers | fixtures))})")
    if unmarked:
        listed = "\n  ".join(unmarked)
        raise pytest.UsageError(
            f"these tests need a server or an engine but lack the integration marker "
            f"(add pytest.mark.integration):\n  {listed}"
        )
