"""Fixtures of conveyor-prefect's tests: one real Prefect server per session, a repository per test.

The server is ``prefect server start --host 127.0.0.1 --port <free> --no-ui``
with its own ``PREFECT_HOME`` in a temp dir and analytics off. It dies with
the test process (PR_SET_PDEATHSIG) and is stopped by PID when the session ends.

Container tests use conveyor-testing's real Docker daemon, registry and base
image (``docker_daemon``, ``registry``, ``base_image``).
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

SERVER_START_TIMEOUT = 120.0
SERVER_STOP_TIMEOUT = 20.0
_LOCAL_HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def pytest_configure(config: pytest.Config) -> None:
    """Keep Prefect's client side out of the user's home and silent about analytics."""
    os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="conveyor-prefect-client-"))
    os.environ["DO_NOT_TRACK"] = "1"
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    # Tests name their server explicitly; a stray profile setting must not leak in.
    os.environ.pop("PREFECT_API_URL", None)


@dataclass(frozen=True)
class PrefectServer:
    """A running Prefect server."""

    url: str
    """API URL (``http://127.0.0.1:PORT/api``)."""
    home: Path
    pid: int


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent(parent_pid: int) -> Any:
    def preexec() -> None:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        if os.getppid() != parent_pid:
            os.kill(os.getpid(), signal.SIGTERM)

    return preexec


def spawn(argv: list[str], log_path: Path, env: dict[str, str], cwd: Path | None = None) -> subprocess.Popen[bytes]:
    """Start a child that gets SIGTERM when this process dies."""
    with open(log_path, "wb") as log:
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
            preexec_fn=_die_with_parent(os.getpid()),
            start_new_session=True,
        )


def stop(proc: subprocess.Popen[bytes], timeout: float = SERVER_STOP_TIMEOUT) -> None:
    """SIGTERM one process we started, by PID; SIGKILL if it lingers."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def tail(path: Path, lines: int = 20) -> str:
    """The last lines of a log file."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def prefect_env(home: Path, **extra: str) -> dict[str, str]:
    """Environment of a Prefect process we start: own home, no analytics."""
    env = dict(os.environ)
    env.update(
        PREFECT_HOME=str(home),
        DO_NOT_TRACK="1",
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="180",
    )
    env.update(extra)
    return env


def prefect_command() -> list[str]:
    """The ``prefect`` CLI of the Python running the tests."""
    found = Path(sys.executable).with_name("prefect")
    if found.exists():
        return [str(found)]
    which = shutil.which("prefect")
    return [which] if which else [sys.executable, "-m", "prefect"]


def _healthy(url: str) -> bool:
    try:
        with _LOCAL_HTTP.open(f"{url}/health", timeout=2) as resp:
            return resp.status == 200
    except (OSError, urllib.error.URLError):
        return False


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    """One real Prefect server on 127.0.0.1 for the whole session."""
    work = tmp_path_factory.mktemp("prefect-server")
    log_path = work / "server.log"
    for _attempt in range(3):  # the free port may be taken between probing and binding
        port = _free_port()
        url = f"http://127.0.0.1:{port}/api"
        env = prefect_env(work / "home")
        proc = spawn(
            [*prefect_command(), "server", "start", "--host", "127.0.0.1", "--port", str(port), "--no-ui"],
            log_path,
            env,
        )
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while proc.poll() is None and time.monotonic() < deadline and not _healthy(url):
            time.sleep(0.25)
        if proc.poll() is None and _healthy(url):
            break
        stop(proc)
        if "address already in use" not in tail(log_path, 50).lower():
            pytest.fail(
                f"prefect server did not come up within {SERVER_START_TIMEOUT:.0f} s:\n{tail(log_path)}", pytrace=False
            )
    else:
        pytest.fail(f"prefect server found no free port:\n{tail(log_path)}", pytrace=False)
    try:
        yield PrefectServer(url=url, home=work / "home", pid=proc.pid)
    finally:
        if "prefect" in sys.modules:
            # Send the logs flow runs left behind while the server still answers.
            from prefect.logging.handlers import APILogWorker

            APILogWorker.drain_all(timeout=5)
        stop(proc)


def _forget_stores() -> None:
    from conveyor import _repository

    for store in _repository._stores.values():
        store.close()
    _repository._stores.clear()


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh conveyor repository as the working folder; stores opened by the test are closed after it."""
    monkeypatch.setenv("CONVEYOR_REPOSITORY", str(tmp_path))
    (tmp_path / ".conveyor").mkdir()
    monkeypatch.delenv("CONVEYOR_STORE_URL", raising=False)
    monkeypatch.delenv("CONVEYOR_STACK", raising=False)
    monkeypatch.chdir(tmp_path)
    yield tmp_path
    _forget_stores()


def register_prefect_stack(name: str = "on_prefect", *, activate: bool = True, **config: Any) -> str:
    """Register a ``prefect`` orchestrator with ``config`` and a stack with the default artifact store."""
    from conveyor import Client

    client = Client()
    client.register_component("orchestrator", name, "prefect", config)
    client.register_stack(name, {"orchestrator": name, "artifact_store": "default"})
    if activate:
        client.activate_stack(name)
    return name


@pytest.fixture
def prefect_stack(repo: Path, prefect_server: PrefectServer) -> str:
    """A ``prefect`` stack (in-process steps) pointed at the session's server, activated."""
    return register_prefect_stack(api_url=prefect_server.url)


# -- containers ------------------------------------------------------------------------
@pytest.fixture(scope="session")
def wheel_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The image builder's wheel cache for the session (the first image prepares every wheel)."""
    return tmp_path_factory.mktemp("wheel-cache")


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


def register_container_stack(
    registry_host: str,
    base_image: str,
    cache: Path,
    *,
    name: str = "boxed",
    artifact_store: str = "default",
    **config: Any,
) -> str:
    """Register a ``prefect`` orchestrator with ``config``, the docker image builder and a registry, as a stack."""
    from conveyor import Client

    client = Client()
    client.register_component("orchestrator", name, "prefect", config)
    client.register_component(
        "image_builder", f"{name}_builder", "docker", {"parent_image": base_image, "cache_dir": str(cache)}
    )
    client.register_component("container_registry", f"{name}_registry", "default", {"uri": f"{registry_host}/ml"})
    client.register_stack(
        name,
        {
            "orchestrator": name,
            "artifact_store": artifact_store,
            "image_builder": f"{name}_builder",
            "container_registry": f"{name}_registry",
        },
    )
    return name


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
