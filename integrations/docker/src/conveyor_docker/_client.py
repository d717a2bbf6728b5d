"""The Docker daemon connection, and turning docker's event streams into clear errors."""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Iterable
from typing import Any

from conveyor.exceptions import StackError

_lock = threading.Lock()
_clients: dict[str, Any] = {}

LOG_TAIL_LINES = 25


def docker_client() -> Any:
    """A ``docker.DockerClient`` for the daemon of ``DOCKER_HOST`` (default: the local socket).

    Raises:
        StackError: no daemon answers; says how to start one.
    """
    import docker
    import requests

    where = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    with _lock:
        client = _clients.get(where)
        if client is not None:
            return client
        if where.startswith("unix://"):
            reason = _unix_socket_problem(where.removeprefix("unix://"))
            if reason is not None:
                raise _no_daemon(where, reason)
        # A pinned API version: the probe then fails on ping(), where it can be closed,
        # rather than inside the constructor while negotiating a version.
        probe = docker.from_env(version="1.41", timeout=10)
        try:
            probe.ping()
        except (docker.errors.DockerException, requests.exceptions.RequestException, OSError) as exc:
            raise _no_daemon(where, str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None
        finally:
            probe.close()
        client = docker.from_env(timeout=600)
        _clients[where] = client
        return client


def _no_daemon(where: str, reason: str) -> StackError:
    return StackError(
        f"cannot reach the Docker daemon at {where}: {reason}",
        "start one (sudo systemctl start docker, or sudo dockerd --bridge=none --iptables=false "
        "--ip-masq=false &) or point DOCKER_HOST at a running daemon",
    )


def _unix_socket_problem(path: str) -> str | None:
    """Why nothing answers on a unix socket, or None if something does."""
    import socket

    # Checked here because a failed connection inside the docker SDK leaks its socket.
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        try:
            sock.connect(path)
        except OSError as exc:
            return exc.strerror or str(exc)
    return None


class EventLog:
    """Collects the text of docker's build or push events; remembers the first error."""

    def __init__(self) -> None:
        self.lines: deque[str] = deque(maxlen=400)
        self.error: str | None = None
        self.aux: list[dict[str, Any]] = []

    def feed(self, events: Iterable[dict[str, Any]]) -> EventLog:
        """Consume a stream of decoded events."""
        for event in events:
            if "stream" in event:
                self.lines.extend(str(event["stream"]).rstrip("\n").splitlines())
            elif "status" in event and not event.get("progressDetail"):
                ident = event.get("id")
                self.lines.append(f"{ident}: {event['status']}" if ident else str(event["status"]))
            if "aux" in event and isinstance(event["aux"], dict):
                self.aux.append(event["aux"])
            if ("error" in event or "errorDetail" in event) and self.error is None:
                detail = event.get("errorDetail") or {}
                self.error = str(event.get("error") or detail.get("message") or detail).strip()
                self.lines.append(self.error)
        return self

    def tail(self, lines: int = LOG_TAIL_LINES) -> str:
        """The last lines of the log, indented, for an error message."""
        kept = [line for line in self.lines if line.strip()][-lines:]
        return "\n".join(f"    {line}" for line in kept)


class BuildFailedError(StackError):
    """An image build or push failed; the message is followed by the tail of docker's log.

    Args:
        message: one line saying what failed.
        hint: one line saying how to fix it.
        log_tail: the last lines of the build or push log.
    """

    def __init__(self, message: str, hint: str | None = None, *, log_tail: str = "") -> None:
        super().__init__(message, hint)
        self.log_tail = log_tail

    def __str__(self) -> str:
        head = super().__str__()
        return f"{head}\n  last lines of docker's log:\n{self.log_tail}" if self.log_tail else head
