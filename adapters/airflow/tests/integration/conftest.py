"""Real Apache Airflow for the integration tests.

``airflow_home``: an AIRFLOW_HOME in a temp folder with a migrated SQLite
database, set for this process before Airflow is first imported, so every
exported DAG runs with ``dag.test()`` in this one process.

``airflow_servers``: api-server, scheduler and dag-processor of another
AIRFLOW_HOME on 127.0.0.1, with the simple auth manager's generated
password, for the trigger path. They die with this process and are stopped
by PID.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from airflow_harness import AirflowHome, AirflowServers

from conveyor_testing.processes import free_port, spawn_server, stop_server

AIRFLOW_BIN = Path(sys.executable).parent / "airflow"
MIGRATE_TIMEOUT = 300.0
SERVER_START_TIMEOUT = 180.0


def _airflow_env(home: Path, dags: Path) -> dict[str, str]:
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
    }


def _migrate(env: dict[str, str], log: Path) -> None:
    with open(log, "wb") as out:
        proc = subprocess.run(
            [str(AIRFLOW_BIN), "db", "migrate"],
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=MIGRATE_TIMEOUT,
            check=False,
        )
    if proc.returncode != 0:
        pytest.fail(f"airflow db migrate failed; see {log}", pytrace=False)


@pytest.fixture(scope="session")
def airflow_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowHome]:
    """This process's Airflow: a temp AIRFLOW_HOME with SQLite, migrated once per session."""
    if "airflow" in sys.modules:
        pytest.fail("Airflow was imported before the airflow_home fixture set its configuration", pytrace=False)
    if not AIRFLOW_BIN.exists():
        pytest.fail(f"no Airflow next to {sys.executable}; run the tests in the Airflow environment", pytrace=False)
    root = tmp_path_factory.mktemp("airflow")
    home, dags = root / "home", root / "dags"
    dags.mkdir()
    env = _airflow_env(home, dags)
    _migrate(env, root / "migrate.log")
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        yield AirflowHome(home=home, dags=dags)


REPO_ROOT = Path(__file__).resolve().parents[4]


def _has_conveyor_not_airflow(python: Path) -> bool:
    """Whether ``python`` imports this checkout's conveyor, and no Airflow."""
    check = subprocess.run(
        [
            str(python),
            "-c",
            "import importlib.util as u, conveyor.runtime; assert u.find_spec('airflow') is None; "
            "print(conveyor.runtime.__file__)",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if check.returncode != 0:
        return False
    # Another checkout's conveyor (installed editable elsewhere) is not the code under test.
    return Path(check.stdout.strip()).resolve().is_relative_to(REPO_ROOT / "core")


@pytest.fixture(scope="session")
def step_python(tmp_path_factory: pytest.TempPathFactory) -> str:
    """An interpreter with conveyor but without Airflow, for python-mode steps.

    The interpreter this Airflow environment was made from when it has this
    checkout's conveyor (as on the developers' machines), else a fresh venv
    with this checkout's core.
    """
    base = Path(sys.base_prefix) / "bin" / "python3"
    if _has_conveyor_not_airflow(base):
        return str(base)
    uv = shutil.which("uv")
    if uv is None:
        pytest.fail("uv is needed to make a step environment without Airflow: pip install uv", pytrace=False)
    venv = tmp_path_factory.mktemp("step-venv")
    for argv in (
        [uv, "venv", "--quiet", "--python", sys.executable, str(venv)],
        [
            uv,
            "pip",
            "install",
            "--quiet",
            "--compile-bytecode",
            "--python",
            str(venv / "bin" / "python"),
            "-e",
            str(REPO_ROOT / "core"),
        ],
    ):
        subprocess.run(argv, check=True, timeout=600)
    python = venv / "bin" / "python"
    assert _has_conveyor_not_airflow(python), f"{python} cannot import conveyor"
    return str(python)


# -- a running Airflow, for the trigger path ---------------------------------------------------
def _wait_for(url: str, procs: list[subprocess.Popen[bytes]], logs: Path) -> None:
    import httpx

    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while time.monotonic() < deadline:
        for proc in procs:
            if proc.poll() is not None:
                pytest.fail(f"an Airflow server exited with {proc.returncode}; see {logs}", pytrace=False)
        try:
            if httpx.get(f"{url}/api/v2/monitor/health", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    pytest.fail(f"Airflow's api-server did not answer within {SERVER_START_TIMEOUT:g} s; see {logs}", pytrace=False)


@pytest.fixture(scope="module")
def airflow_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowServers]:
    """A running Airflow with the simple auth manager; user ``conveyor`` gets a generated password."""
    root = tmp_path_factory.mktemp("airflow-servers")
    home, dags, logs = root / "home", root / "dags", root / "logs"
    dags.mkdir()
    logs.mkdir()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")},
        **_airflow_env(home, dags),
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "2",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{url}/execution/",
        "AIRFLOW__API__BASE_URL": url,
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(16),
        "AIRFLOW__API__SECRET_KEY": secrets.token_hex(16),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "conveyor:admin",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "2",
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "2",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
    }
    _migrate(env, logs / "migrate.log")
    commands = {
        "api-server": [str(AIRFLOW_BIN), "api-server"],
        "scheduler": [str(AIRFLOW_BIN), "scheduler", "--skip-serve-logs"],
        "dag-processor": [str(AIRFLOW_BIN), "dag-processor"],
    }
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for name, argv in commands.items():
            procs.append(spawn_server(argv, log_path=logs / f"{name}.log", env=env, cwd=root))
        _wait_for(url, procs, logs)
        passwords: dict[str, Any] = json.loads((home / "simple_auth_manager_passwords.json.generated").read_text())
        yield AirflowServers(
            url=url, home=home, dags=dags, username="conveyor", password=passwords["conveyor"], logs=logs
        )
    finally:
        for proc in reversed(procs):
            # group: also the workers a server started itself, in the session it leads.
            stop_server(proc, timeout=30, group=True)


# -- Docker mode ---------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def built_images(docker_daemon: Any) -> Iterator[None]:
    """Remove the images this session's builds made (the builder labels them)."""
    import docker

    # Ids only: other builds on this daemon may remove images while these are listed.
    before = set(docker_daemon.api.images(all=True, quiet=True))
    yield
    for summary in docker_daemon.api.images(filters={"label": "conveyor.image"}):
        if summary["Id"] in before:
            continue
        for tag in summary.get("RepoTags") or []:
            try:
                docker_daemon.images.remove(tag)
            except docker.errors.APIError:
                pass
