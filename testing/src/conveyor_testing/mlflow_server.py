"""A real MLflow tracking server for the test suites.

``mlflow_server`` starts ``mlflow server`` once per session on a free port of
127.0.0.1, with a SQLite backend store and an artifact folder in a temporary
directory, and stops it by its PID at the end. ``mlflow_auth_server`` is
another one that asks for a user name and password (MLflow's ``basic-auth``
app, which needs ``mlflow[auth]``); its admin's credentials are on the handle.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import shutil
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor_testing.processes import (
    HOST,
    ServerStartError,
    free_port,
    make_tmpdir,
    missing,
    remove_tmpdir,
    spawn_server,
    stop_server,
    wait_until,
)

__all__ = ["MLflowServer", "mlflow_auth_server", "mlflow_server", "mlflow_tracking_uri", "start_mlflow"]

# The server answers /health after ~11 s on a 2-core machine; leave room for a busy one.
START_TIMEOUT = 120.0


@dataclasses.dataclass
class MLflowServer:
    """A running ``mlflow server`` started by :func:`start_mlflow`."""

    url: str
    proc: subprocess.Popen[bytes]
    tmpdir: Path
    log_path: Path
    startup_seconds: float = 0.0
    username: str | None = None
    """The admin user of a server started with ``auth=True``."""
    password: str | None = None

    def stop(self) -> None:
        """Stop the server by its PID (its workers go with it) and remove its directory."""
        stop_server(self.proc, stop_signal=signal.SIGTERM, timeout=10.0)
        remove_tmpdir(self.tmpdir)


def _mlflow_command() -> list[str]:
    exe = shutil.which("mlflow", path=os.path.dirname(sys.executable)) or shutil.which("mlflow")
    if exe is None:
        missing("MLflow (Python package mlflow)")
    return [exe]


def _health(url: str) -> None:
    with urllib.request.urlopen(f"{url}/health", timeout=5) as response:  # noqa: S310 - 127.0.0.1 only
        if response.status != 200:
            raise RuntimeError(f"/health answered {response.status}")


def start_mlflow(*, auth: bool = False) -> MLflowServer:
    """Start ``mlflow server`` on 127.0.0.1 and wait until it answers ``/health``.

    Args:
        auth: ask for a user name and password (MLflow's ``basic-auth`` app); the admin's are on the handle.
    """
    command = _mlflow_command()
    for attempt in range(3):
        tmp = make_tmpdir("mlflow")
        port = free_port()
        url = f"http://{HOST}:{port}"
        log_path = tmp / "server.log"
        argv = [
            *command,
            "server",
            "--host",
            HOST,
            "--port",
            str(port),
            "--workers",
            "1",
            "--backend-store-uri",
            f"sqlite:///{tmp / 'mlflow.db'}",
            "--default-artifact-root",
            str(tmp / "artifacts"),
        ]
        # No background job runners: the tests need the tracking API only.
        env = dict(
            os.environ, MLFLOW_DISABLE_TELEMETRY="true", DO_NOT_TRACK="1", MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false"
        )
        username = password = None
        if auth:
            username, password = "admin", secrets.token_urlsafe(12)
            ini = tmp / "basic_auth.ini"
            ini.write_text(
                "[mlflow]\ndefault_permission = READ\n"
                f"database_uri = sqlite:///{tmp / 'auth.db'}\n"
                f"admin_username = {username}\n"
                "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
            )
            argv += ["--app-name", "basic-auth"]
            env.update(
                MLFLOW_AUTH_CONFIG_PATH=str(ini),
                MLFLOW_AUTH_ADMIN_PASSWORD=password,
                MLFLOW_FLASK_SERVER_SECRET_KEY=secrets.token_hex(16),
            )
        proc = spawn_server(argv, log_path=log_path, cwd=tmp, env=env)
        server = MLflowServer(url=url, proc=proc, tmpdir=tmp, log_path=log_path, username=username, password=password)
        try:
            server.startup_seconds = wait_until(
                lambda url=url: _health(url), proc=proc, what="mlflow server", log_path=log_path, timeout=START_TIMEOUT
            )
            return server
        except ServerStartError as exc:
            server.stop()
            if exc.port_clash and attempt < 2:  # a port picked free was taken before the server bound it
                continue
            pytest.fail(f"mlflow server did not start: {exc}", pytrace=False)
        except BaseException:
            server.stop()
            raise
    raise AssertionError("unreachable")


@pytest.fixture(scope="session")
def mlflow_server() -> Iterator[MLflowServer]:
    """An MLflow tracking server on 127.0.0.1 for the whole session."""
    server = start_mlflow()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def mlflow_tracking_uri(mlflow_server: MLflowServer) -> str:
    """The tracking URI of the session's MLflow server."""
    return mlflow_server.url


@pytest.fixture(scope="session")
def mlflow_auth_server() -> Iterator[MLflowServer]:
    """An MLflow tracking server on 127.0.0.1 that asks for a user name and password (``.username``, ``.password``)."""
    server = start_mlflow(auth=True)
    try:
        yield server
    finally:
        server.stop()
