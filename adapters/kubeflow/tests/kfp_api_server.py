"""A recording stand-in for KFP's v2 REST API, for tests of the submission path.

No KFP server can run on this machine (it needs a Kubernetes cluster), so
tests submit with the real ``kfp.Client`` to this server on 127.0.0.1. It
implements only what ``kfp.Client`` calls to create runs and recurring runs
(health, experiments, runs, recurring runs), records every request, checks
a bearer token when given one, and answers run state from a script.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

API = "/apis/v2beta1"


@dataclass
class Recorded:
    """One request the server received."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    """Header names in lower case."""
    body: Any


@dataclass
class KfpApiServer:
    """State of the server: what it received and how it answers."""

    url: str = ""
    token: str | None = None
    """Bearer token every request must carry (None: no check)."""
    states: list[str] = field(default_factory=lambda: ["RUNNING", "SUCCEEDED"])
    """States ``GET /runs/{id}`` answers in turn (the last one repeats)."""
    fail_create: int | None = None
    """HTTP status to answer ``POST /runs`` and ``POST /recurringruns`` with, instead of accepting."""
    requests: list[Recorded] = field(default_factory=list)
    experiments: dict[str, dict[str, Any]] = field(default_factory=dict)
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    recurring_runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    _polls: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def calls(self, method: str, path: str) -> list[Recorded]:
        """The recorded requests to one endpoint."""
        return [r for r in self.requests if r.method == method and r.path == API + path]


def _handler(state: KfpApiServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _send(self, status: int, payload: Any) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _handle(self, method: str) -> None:
            url = urlparse(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else None
            with state.lock:
                state.requests.append(
                    Recorded(
                        method, url.path, parse_qs(url.query), {k.lower(): v for k, v in self.headers.items()}, body
                    )
                )
            if state.token is not None and self.headers.get("Authorization") != f"Bearer {state.token}":
                self._send(401, {"error": "Unauthorized", "code": 16, "message": "Unauthorized: bad token"})
                return
            path = url.path.removeprefix(API)
            if method == "GET" and path == "/healthz":
                self._send(200, {"commit_sha": "recorder", "tag_name": "2.5.0", "multi_user": False})
            elif method == "GET" and path == "/experiments":
                wanted = json.loads(parse_qs(url.query).get("filter", ["{}"])[0] or "{}")
                names = [p.get("stringValue") for p in wanted.get("predicates", [])]
                found = [e for e in state.experiments.values() if not names or e["display_name"] in names]
                self._send(200, {"experiments": found, "total_size": len(found)} if found else {})
            elif method == "POST" and path == "/experiments":
                experiment = {**body, "experiment_id": str(uuid.uuid4())}
                state.experiments[experiment["experiment_id"]] = experiment
                self._send(200, experiment)
            elif method == "POST" and path in ("/runs", "/recurringruns"):
                if state.fail_create is not None:
                    self._send(state.fail_create, {"error": "boom", "message": "the run could not be stored"})
                    return
                if path == "/runs":
                    run = {**body, "run_id": str(uuid.uuid4()), "state": "PENDING"}
                    state.runs[run["run_id"]] = run
                else:
                    run = {**body, "recurring_run_id": str(uuid.uuid4()), "status": "ENABLED"}
                    state.recurring_runs[run["recurring_run_id"]] = run
                self._send(200, run)
            elif method == "GET" and path.startswith("/runs/"):
                run_id = path.removeprefix("/runs/")
                run = state.runs.get(run_id)
                if run is None:
                    self._send(404, {"error": "not found", "message": f"run {run_id} not found"})
                    return
                n = state._polls.get(run_id, 0)
                state._polls[run_id] = n + 1
                current = state.states[min(n, len(state.states) - 1)]
                answer = {**run, "state": current}
                if current == "FAILED":
                    answer["error"] = {"code": 2, "message": "task train failed"}
                self._send(200, answer)
            else:
                self._send(404, {"error": "not implemented here", "message": f"{method} {url.path}"})

        def do_GET(self) -> None:
            self._handle("GET")

        def do_POST(self) -> None:
            self._handle("POST")

    return Handler


def serve() -> Iterator[KfpApiServer]:
    """Run a server on a free port of 127.0.0.1 in a thread of this process until the generator closes."""
    state = KfpApiServer()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
