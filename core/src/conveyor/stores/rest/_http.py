"""HTTP to a conveyor server with the standard library: kept-alive connections, one-line errors.

``http.client`` rather than an HTTP library: a step process imports this on
every step, and ``http.client`` costs a fifth of httpx's import time (see the
README's team server section). Connections are kept alive and reused, one
per thread at a time.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import threading
import time
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from conveyor import __version__
from conveyor.exceptions import (
    AuthenticationError,
    ConveyorError,
    NotFoundError,
    PermissionDeniedError,
    StoreError,
)

API_VERSION = 1
"""The REST API's version; a client and a server agree on it or say so in one line."""

API_HEADER = "Conveyor-Api"
"""Request and response header carrying :data:`API_VERSION`."""

VERSION_HEADER = "Conveyor-Version"
"""Request and response header carrying conveyor's version, for messages."""

CONNECT_TIMEOUT = 3.0
"""Seconds to wait for a server to accept a connection: an unreachable one is one line within a few seconds."""

READ_TIMEOUT = 120.0
"""Seconds to wait for an answer once connected."""

_IDLE = 4.0  # the server closes idle connections after 5 s; reconnect rather than race it


def segment(value: str) -> str:
    """``value`` quoted as one path segment."""
    return quote(value, safe="")


class ServerConnection:
    """Requests to one server with one credential.

    Args:
        url: the server's base URL (``http://host:port``).
        token: the ``Authorization: Bearer`` credential, if any.
    """

    def __init__(self, url: str, token: str | None = None) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise StoreError(f"{url!r} is not a conveyor server URL", "give one like http://127.0.0.1:8237")
        self.url = url.rstrip("/")
        self.token = token
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        self._prefix = parts.path.rstrip("/")
        self._idle: list[tuple[http.client.HTTPConnection, float]] = []
        self._lock = threading.Lock()
        self.requests = 0
        """How many HTTP requests this connection made (benchmarks count them)."""

    # -- connections -----------------------------------------------------------------
    def _new(self) -> http.client.HTTPConnection:
        if self._https:
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                self._host, self._port, timeout=CONNECT_TIMEOUT
            )
        else:
            conn = http.client.HTTPConnection(self._host, self._port, timeout=CONNECT_TIMEOUT)
        try:
            conn.connect()
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise self._unreachable(exc) from None
        assert conn.sock is not None
        conn.sock.settimeout(READ_TIMEOUT)
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return conn

    def _take(self) -> tuple[http.client.HTTPConnection, bool]:
        with self._lock:
            while self._idle:
                conn, since = self._idle.pop()
                if time.monotonic() - since < _IDLE:
                    return conn, True
                conn.close()
        return self._new(), False

    def _give_back(self, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            self._idle.append((conn, time.monotonic()))

    def close(self) -> None:
        """Close the kept-alive connections."""
        with self._lock:
            idle, self._idle = self._idle, []
        for conn, _ in idle:
            conn.close()

    def __del__(self) -> None:
        # Kept-alive sockets of a store nobody closed go with it, quietly.
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass

    def _unreachable(self, exc: BaseException) -> StoreError:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc) or type(exc).__name__
        if isinstance(exc, (socket.timeout, TimeoutError)):
            reason = f"no answer within {CONNECT_TIMEOUT:g} s"
        return StoreError(
            f"cannot reach the conveyor server at {self.url}: {reason}",
            "start it (conveyor server start), check the URL, or pick another profile (conveyor profile list)",
        )

    # -- requests --------------------------------------------------------------------
    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        query: dict[str, Any] | None = None,
        raw: bool = False,
        token: str | None = None,
    ) -> Any:
        """Send one request; returns the parsed JSON answer (``raw``: the text).

        Raises:
            StoreError: the server cannot be reached, or answered with an error
                (turned back into the conveyor error the server raised).
        """
        target = self._prefix + path
        if query:
            pairs = [(k, _query_value(x)) for k, v in query.items() for x in (v if isinstance(v, list) else [v])]
            target += "?" + urlencode([(k, x) for k, x in pairs if x is not None])
        headers = {
            "Accept": "application/json",
            API_HEADER: str(API_VERSION),
            VERSION_HEADER: __version__,
        }
        credential = token or self.token
        if credential:
            headers["Authorization"] = f"Bearer {credential}"
        data = None
        if body is not None:
            data = json.dumps(body, separators=(",", ":")).encode("utf-8")
            headers["Content-Type"] = "application/json"
        for attempt in range(2):
            conn, reused = self._take()
            try:
                conn.request(method, target, body=data, headers=headers)
                response = conn.getresponse()
                payload = response.read()
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                # A kept-alive connection the server closed meanwhile: once more on a fresh one.
                if reused and attempt == 0 and not isinstance(exc, (socket.timeout, TimeoutError)):
                    continue
                if isinstance(exc, (socket.timeout, TimeoutError)):
                    raise StoreError(
                        f"the conveyor server at {self.url} did not answer {method} {path} within {READ_TIMEOUT:g} s"
                    ) from None
                raise self._unreachable(exc) from None
            self.requests += 1
            if response.will_close:
                conn.close()
            else:
                self._give_back(conn)
            if response.status >= 400:
                raise self._error(response.status, payload, credential)
            if raw:
                return payload.decode("utf-8")
            return json.loads(payload) if payload else None
        raise AssertionError("unreachable")

    def _error(self, status: int, payload: bytes, credential: str | None) -> ConveyorError:
        try:
            data = json.loads(payload)
            message = str(data.get("error") or "").strip()
            hint = data.get("hint")
            kind = data.get("type")
        except (ValueError, AttributeError):
            message, hint, kind = "", None, None
        message = message.splitlines()[0] if message else f"HTTP {status}"
        if status == 401:
            if credential is None:
                message = f"the conveyor server at {self.url} needs you to log in"
            return AuthenticationError(message, hint or self._login_hint())
        if status == 429:
            return AuthenticationError(message, hint)
        if status == 403:
            return PermissionDeniedError(message, hint)
        cls = _ERRORS.get(kind or "")
        if cls is not None:
            return cls(message, hint)
        if status == 404:
            return NotFoundError(message, hint)
        if status >= 500:
            return StoreError(f"the conveyor server at {self.url} failed: {message}", hint)
        return StoreError(message, hint)

    def _login_hint(self) -> str:
        from conveyor.constants import ENV_API_KEY

        if os.environ.get(ENV_API_KEY):
            return f"{ENV_API_KEY} is not a valid key for {self.url}: set a current one, or `conveyor login {self.url}`"
        return f"log in again: conveyor login {self.url}"


def _query_value(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _error_classes() -> dict[str, type[ConveyorError]]:
    from conveyor import exceptions

    out = {}
    for name in exceptions.__all__:
        cls = getattr(exceptions, name)
        if isinstance(cls, type) and issubclass(cls, ConveyorError):
            out[name] = cls
    return out


_ERRORS = _error_classes()
