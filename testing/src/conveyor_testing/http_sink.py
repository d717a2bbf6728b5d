"""A recording HTTP server on 127.0.0.1: what alerters and webhooks send, kept for the test to read.

``http_sink`` (a pytest fixture) starts one per test in a thread of the test
process and stops it afterwards; step processes the test starts reach it
over loopback like any webhook. Every request is recorded whole (method,
path, headers, body); the sink answers ``status`` (200 unless the test
changes it) with an empty JSON object.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

__all__ = ["HttpSink", "RecordedRequest", "http_sink"]

HOST = "127.0.0.1"


@dataclass(frozen=True)
class RecordedRequest:
    """One request the sink received."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    received: float = field(compare=False)
    """``time.time()`` when it arrived (comparable with the timestamps conveyor records)."""

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body.decode("utf-8"))

    @property
    def text(self) -> str:
        """The body as text."""
        return self.body.decode("utf-8", "replace")


class HttpSink:
    """A threaded HTTP server that records every request.

    Attributes:
        status: the status code it answers with (tests set 500 to see a delivery fail).
    """

    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self.status = 200
        self._arrived = threading.Condition()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def _record(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                request = RecordedRequest(
                    method=self.command,
                    path=self.path,
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=body,
                    received=time.time(),
                )
                with sink._arrived:
                    sink.requests.append(request)
                    sink._arrived.notify_all()
                payload = b"{}"
                self.send_response(sink.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_POST = do_PUT = do_GET = _record  # noqa: N815 - http.server's naming

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
                pass  # the test reads the requests, not a log

        self._server = ThreadingHTTPServer((HOST, 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="http-sink", daemon=True)

    @property
    def url(self) -> str:
        """The sink's base URL (``http://127.0.0.1:PORT``)."""
        return f"http://{HOST}:{self._server.server_address[1]}"

    def start(self) -> HttpSink:
        """Start answering; returns the sink."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop answering and close the socket."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def wait_for(self, count: int, timeout: float = 5.0) -> list[RecordedRequest]:
        """Wait until at least ``count`` requests arrived (or ``timeout`` passed); returns all of them."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while len(self.requests) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._arrived.wait(left)
            return list(self.requests)

    def only_request(self, timeout: float = 5.0, grace: float = 0.5) -> RecordedRequest:
        """The one request that arrives within ``timeout``, after waiting ``grace`` more for a second one.

        Raises:
            AssertionError: none, or more than one, arrived.
        """
        first = self.wait_for(1, timeout)
        assert first, f"no request reached the sink within {timeout:g} s"
        time.sleep(grace)
        with self._arrived:
            found = list(self.requests)
        assert len(found) == 1, f"{len(found)} requests reached the sink: {[r.text for r in found]}"
        return found[0]

    def __enter__(self) -> HttpSink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@pytest.fixture
def http_sink() -> Iterator[HttpSink]:
    """A recording HTTP server on 127.0.0.1 for one test."""
    with HttpSink() as sink:
        yield sink
