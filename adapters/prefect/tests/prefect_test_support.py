"""Helpers of conveyor-prefect's tests: the Prefect server's handle, processes, stacks.

A module name unique across the repository's test suites, so that suites can share a pytest process.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conveyor_testing.processes import log_tail, spawn_server, stop_server

SERVER_STOP_TIMEOUT = 20.0


@dataclass(frozen=True)
class PrefectServer:
    """A running Prefect server."""

    url: str
    """API URL (``http://127.0.0.1:PORT/api``)."""
    home: Path
    pid: int


def spawn(argv: list[str], log_path: Path, env: dict[str, str], cwd: Path | None = None) -> subprocess.Popen[bytes]:
    """Start a child (a server, a worker) that gets SIGTERM if this process dies first."""
    return spawn_server(argv, log_path=log_path, env=env, cwd=cwd)


def stop(proc: subprocess.Popen[bytes], timeout: float = SERVER_STOP_TIMEOUT) -> None:
    """Stop one process we started, by PID (SIGTERM, then SIGKILL), and whatever it started in its session."""
    stop_server(proc, timeout=timeout, group=True)


def tail(path: Path, lines: int = 20) -> str:
    """The last lines of a log file."""
    return log_tail(path, lines)


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


def register_prefect_stack(name: str = "on_prefect", *, activate: bool = True, **config: Any) -> str:
    """Register a ``prefect`` orchestrator with ``config`` and a stack with the default artifact store."""
    from conveyor import Client

    client = Client()
    client.register_component("orchestrator", name, "prefect", config)
    client.register_stack(name, {"orchestrator": name, "artifact_store": "default"})
    if activate:
        client.activate_stack(name)
    return name


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
