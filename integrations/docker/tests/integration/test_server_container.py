"""The server's image (deploy/server/Dockerfile, as the README builds it) serves a team: login, runs, secrets."""

from __future__ import annotations

import http.client
import json
import secrets
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from docker_test_support import write_module

from conveyor import Client
from conveyor.secrets import ENV_SECRETS_KEY, ENV_SECRETS_KEY_FILE, ENV_SECRETS_OWNER
from conveyor_testing.docker_env import repo_root
from conveyor_testing.processes import HOST, free_port

pytestmark = [pytest.mark.integration, pytest.mark.docker, pytest.mark.postgres]

TOKEN = "ctr-5e2a-uNiQuE-served-token-19b7"

PIPELINE = """
import os
from conveyor import get_step_context, pipeline, step


@step(secrets=["svc"], environment={"SVC_TOKEN": "{{svc.token}}"})
def use_secret() -> int:
    assert get_step_context().get_secret("svc")["token"] == os.environ["SVC_TOKEN"]
    return len(os.environ["SVC_TOKEN"])


@step
def double(n: int) -> int:
    return 2 * n


@pipeline(enable_cache=False)
def through_the_container() -> None:
    double(use_secret())
"""


def _status(port: int, path: str) -> int | None:
    conn = http.client.HTTPConnection(HOST, port, timeout=5)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    except OSError:
        return None
    finally:
        conn.close()


@pytest.fixture(scope="module")
def server_image(docker_daemon: Any, base_image: str, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The README's image, built from this checkout on the local base image (no Docker Hub here).

    This machine reaches its package index only through its own settings, so the build is the
    Dockerfile's offline one: every wheel prepared here, in ``wheels/`` of the context.
    """
    root = repo_root()
    context = tmp_path_factory.mktemp("server-image") / "core"
    shutil.copytree(root / "core", context, ignore=shutil.ignore_patterns("__pycache__", "tests"))
    wheels = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "-w",
            str(context / "wheels"),
            f"{context}[server,postgres]",
            "hatchling",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert wheels.returncode == 0, wheels.stderr[-2000:]
    tag = f"conveyor-server-test:{uuid.uuid4().hex[:12]}"
    image, _ = docker_daemon.images.build(
        path=str(context),
        dockerfile=str(root / "deploy" / "server" / "Dockerfile"),
        buildargs={"BASE": base_image, "PIP_OPTIONS": "--no-index"},
        network_mode="host",
        tag=tag,
        rm=True,
        forcerm=True,
    )
    yield image
    docker_daemon.images.remove(image.id, force=True)


def test_the_server_image_serves_logins_runs_and_secrets(
    server_image: Any,
    docker_daemon: Any,
    fresh_postgres_url: str,
    repo: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from cryptography.fernet import Fernet

    # The image holds nothing secret and runs as a user of its own.
    config = server_image.attrs["Config"]
    assert not [e for e in config.get("Env") or [] if e.startswith(("CONVEYOR_SECRETS", "CONVEYOR_SERVER_STORE"))]
    assert config["User"] == "10001:10001"

    password = secrets.token_hex(12)
    key = Fernet.generate_key().decode()
    port = free_port()
    container = docker_daemon.containers.run(
        server_image.id,
        # The image's own command, on 127.0.0.1 and a free port (a test machine talks only to itself).
        ["conveyor", "server", "start", "--host", HOST, "--port", str(port), "--data-dir", "/data", "--workers", "2"],
        environment={
            "CONVEYOR_ADMIN_PASSWORD": password,
            ENV_SECRETS_KEY: key,
            "CONVEYOR_SERVER_STORE_URL": fresh_postgres_url,
        },
        network_mode="host",
        detach=True,
    )
    try:
        deadline = time.monotonic() + 120
        while _status(port, "/ready") != 200:
            container.reload()
            assert container.status in ("created", "running"), container.logs().decode()[-2000:]
            assert time.monotonic() < deadline, container.logs().decode()[-2000:]
            time.sleep(0.5)
        assert _status(port, "/health") == 200

        for name in (ENV_SECRETS_KEY, ENV_SECRETS_KEY_FILE, ENV_SECRETS_OWNER):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("CONVEYOR_CONFIG_DIR", str(repo.parent / "config"))
        url = f"http://{HOST}:{port}"
        login = subprocess.run(
            [sys.executable, "-m", "conveyor.cli", "login", url, "--username", "admin", "--password-stdin"],
            input=password + "\n",
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert login.returncode == 0, login.stderr

        client = Client()
        client.create_secret("svc", {"token": TOKEN})
        client.register_component("orchestrator", "procs", "local", {"mode": "process"})
        client.register_stack("procs", {"orchestrator": "procs", "artifact_store": "default"})
        write_module(repo, "served_pipe", PIPELINE)
        import served_pipe

        run = served_pipe.through_the_container.with_options(stack="procs")()
        assert run.status == "completed"
        assert run.steps["double"].output.load() == 2 * len(TOKEN)
        listed = subprocess.run(
            [sys.executable, "-m", "conveyor.cli", "pipeline", "runs", "through_the_container"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert listed.returncode == 0 and run.name in listed.stdout, listed.stderr

        # The server keeps the secret encrypted with the key it was given; neither it nor the
        # admin password is written to its log.
        logs = container.logs().decode()
        assert password not in logs and TOKEN not in logs and key not in logs
        import sqlalchemy as sa

        engine = sa.create_engine(fresh_postgres_url)
        try:
            with engine.connect() as conn:
                tables = sa.inspect(conn).get_table_names()
                dumped = json.dumps(
                    [[str(v) for v in row] for t in tables for row in conn.execute(sa.text(f'SELECT * FROM "{t}"'))]
                )
        finally:
            engine.dispose()
        assert TOKEN not in dumped and password not in dumped
    finally:
        container.remove(force=True)
