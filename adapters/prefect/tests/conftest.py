"""Fixtures of conveyor-prefect's tests: one real Prefect server per session, stacks on it.

The server is ``prefect server start --host 127.0.0.1 --port <free> --no-ui``
with its own ``PREFECT_HOME`` in a temp dir and analytics off, started with
conveyor_testing's process helpers: it dies with the test process and is
stopped by PID when the session ends. ``repo`` comes from conveyor_testing.

Container tests use conveyor-testing's real Docker daemon, registry and base
image (``docker_daemon``, ``registry``, ``base_image``). Helpers that tests
import are in ``prefect_test_support``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prefect_test_support import (
    PrefectServer,
    prefect_command,
    prefect_env,
    register_container_stack,
    register_prefect_stack,
    spawn,
    stop,
)

from conveyor_testing.processes import free_port, start_with_retries, wait_for_http

SERVER_START_TIMEOUT = 120.0


def pytest_configure(config: pytest.Config) -> None:
    """Keep Prefect's client side out of the user's home and silent about analytics."""
    os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="conveyor-prefect-client-"))
    os.environ["DO_NOT_TRACK"] = "1"
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    # Tests name their server explicitly; a stray profile setting must not leak in.
    os.environ.pop("PREFECT_API_URL", None)


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    """One real Prefect server on 127.0.0.1 for the whole session."""
    work = tmp_path_factory.mktemp("prefect-server")
    log_path = work / "server.log"

    def start() -> tuple[subprocess.Popen[bytes], str]:
        port = free_port()
        url = f"http://127.0.0.1:{port}/api"
        proc = spawn(
            [*prefect_command(), "server", "start", "--host", "127.0.0.1", "--port", str(port), "--no-ui"],
            log_path,
            prefect_env(work / "home"),
        )
        try:
            wait_for_http(
                f"{url}/health", proc=proc, what="prefect server", log_path=log_path, timeout=SERVER_START_TIMEOUT
            )
        except BaseException:
            stop(proc)
            raise
        return proc, url

    # The free port may be taken between probing and binding: start_with_retries tries another.
    proc, url = start_with_retries(start, "prefect server")
    try:
        yield PrefectServer(url=url, home=work / "home", pid=proc.pid)
    finally:
        if "prefect" in sys.modules:
            # Send the logs flow runs left behind while the server still answers.
            from prefect.logging.handlers import APILogWorker

            APILogWorker.drain_all(timeout=5)
        stop(proc)


@pytest.fixture
def prefect_stack(repo: Path, prefect_server: PrefectServer) -> str:
    """A ``prefect`` stack (in-process steps) pointed at the session's server, activated."""
    return register_prefect_stack(api_url=prefect_server.url)


# -- containers ------------------------------------------------------------------------
@pytest.fixture(scope="session")
def session_images(docker_daemon: Any, registry: Any) -> Iterator[None]:
    """Remove the images this session built for its own registry (other sessions may share the daemon)."""
    import docker

    yield
    for image in docker_daemon.images.list(filters={"label": "conveyor.image"}):
        for tag in image.tags:
            if tag.startswith(f"{registry.host}/"):
                try:
                    docker_daemon.images.remove(tag)
                except docker.errors.APIError:
                    pass


@pytest.fixture
def no_leftover_containers(docker_daemon: Any) -> Iterator[None]:
    """Fail a test that leaves step containers of its runs behind (other sessions may share the daemon)."""
    yield
    from conveyor import Client

    runs = {r.id for r in Client().store.list_runs()}
    left = [
        c
        for c in docker_daemon.containers.list(all=True, filters={"label": "conveyor.run"})
        if c.labels.get("conveyor.run") in runs
    ]
    for container in left:
        container.remove(force=True)
    assert not left, f"step containers left behind: {[c.name for c in left]}"


@pytest.fixture
def container_stack(
    repo: Path,
    prefect_server: PrefectServer,
    registry: Any,
    base_image: str,
    wheel_cache: Path,
    session_images: None,
    no_leftover_containers: None,
) -> str:
    """A ``prefect`` stack with ``step_mode: container`` (SQLite and local artifacts, mounted into the steps)."""
    return register_container_stack(
        registry.host,
        base_image,
        wheel_cache,
        api_url=prefect_server.url,
        step_mode="container",
        cancel_poll_interval=0.5,
    )
