"""Real conveyor servers on 127.0.0.1 for the test suites.

``conveyor server start`` runs as a child process of pytest (it dies with
it), over a SQLite file or a PostgreSQL database, and is stopped by PID.
Each handle has an admin service account's API key, and can wipe the
store's data between tests (:meth:`ConveyorServer.reset`): the server keeps
nothing in memory, so a wiped database is a fresh server.

Fixtures:

* ``conveyor_server_factory``: ``start(store_url=None, workers=1, leeway=60.0)``
  starts one more server (stopped at session end).
* ``conveyor_server``: one server over SQLite for the session.
* ``conveyor_server_postgres``: one server over a PostgreSQL database for the session.
* ``conveyor_server_short_leeway``: one server over SQLite for the session whose run
  tokens stop working :data:`SHORT_LEEWAY` seconds after their run settles (tests that
  check a token is dead after a run wait that long, not a minute).
"""

from __future__ import annotations

import dataclasses
import http.client
import json
import os
import secrets
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from conveyor_testing.processes import (
    HOST,
    ServerStartError,
    free_port,
    log_tail,
    make_tmpdir,
    remove_tmpdir,
    spawn_server,
    stop_server,
    wait_until,
)

__all__ = [
    "ConveyorServer",
    "conveyor_server",
    "conveyor_server_factory",
    "SHORT_LEEWAY",
    "conveyor_server_postgres",
    "conveyor_server_short_leeway",
    "start_conveyor_server",
]

SHORT_LEEWAY = 2.0
"""Seconds a run token of ``conveyor_server_short_leeway`` outlives its run."""

# Deleted in this order (children before parents); users and API keys stay.
# Kept by reset(): the accounts (cleared of all but the admins separately) and the schema's version.
_KEPT_TABLES = frozenset({"server_users", "server_credentials", "alembic_version"})


@dataclasses.dataclass
class ConveyorServer:
    """A running conveyor server started by a fixture.

    Attributes:
        url: ``http://127.0.0.1:PORT``.
        store_url: its database (tests may read it; the server's clients never get it).
        data_dir: its folder (secrets key, SQLite file, default artifact folder).
        admin_password: the first admin's password.
        admin_key: an API key of an admin service account.
    """

    url: str
    store_url: str
    data_dir: Path
    admin_password: str
    admin_key: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    tmpdir: Path

    @property
    def pid(self) -> int:
        """The server's process id (what stops it)."""
        return self.proc.pid

    def request(self, method: str, path: str, body: Any = None, *, token: str | None = None) -> tuple[int, Any]:
        """One request as raw as a client sends it: ``(status, parsed JSON or text)``."""
        host, port = self.url.removeprefix("http://").split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=60)
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        try:
            data = None if body is None else json.dumps(body).encode()
            conn.request(method, path, body=data, headers=headers)
            response = conn.getresponse()
            raw = response.read()
        finally:
            conn.close()
        try:
            return response.status, json.loads(raw) if raw else None
        except ValueError:
            return response.status, raw.decode("utf-8", "replace")

    def api(self, method: str, path: str, body: Any = None, *, token: str | None = None) -> Any:
        """A request that must succeed (2xx); returns its JSON."""
        status, data = self.request(method, path, body, token=token or self.admin_key)
        assert 200 <= status < 300, f"{method} {path}: {status} {data}"
        return data

    def login(self, username: str, password: str) -> str:
        """A session token."""
        return self.api("POST", "/api/login", {"username": username, "password": password}, token="-")["token"]

    def create_user(self, name: str, role: str, password: str | None = None) -> str:
        """Add a user and return a session token of theirs."""
        password = password or secrets.token_hex(8)
        self.api("POST", "/api/users", {"name": name, "role": role, "password": password})
        return self.login(name, password)

    def create_service_account(self, name: str, role: str) -> str:
        """Add a service account and return its API key."""
        return self.api("POST", "/api/service-accounts", {"name": name, "role": role})["api_key"]

    def reset(self) -> None:
        """Wipe every pipeline, run, artifact, stack, component and secret, and every user but the admins."""
        import sqlalchemy as sa

        engine = sa.create_engine(self.store_url)
        try:
            with engine.begin() as conn:
                # Every table the schema has now (a new one included), children before their parents.
                schema = sa.MetaData()
                schema.reflect(conn)
                for table in reversed(schema.sorted_tables):
                    if table.name not in _KEPT_TABLES:
                        conn.execute(table.delete())
                conn.execute(
                    sa.text(
                        "DELETE FROM server_credentials WHERE kind != 'api_key' OR user_id IN "
                        "(SELECT id FROM server_users WHERE role != 'admin')"
                    )
                )
                conn.execute(sa.text("DELETE FROM server_users WHERE role != 'admin'"))
        finally:
            engine.dispose()

    def stop(self) -> None:
        """Stop the server by its PID (it stops its workers) and remove its folder."""
        stop_server(self.proc)
        remove_tmpdir(self.tmpdir)


def start_conveyor_server(
    store_url: str | None = None,
    *,
    workers: int = 1,
    leeway: float = 60.0,
    python: str | None = None,
    extra_env: dict[str, str] | None = None,
    access_log: bool = False,
) -> ConveyorServer:
    """Start ``conveyor server start`` on a free port of 127.0.0.1 and wait until it is ready.

    Args:
        store_url: its database (default: a SQLite file in its folder).
        workers: worker processes.
        leeway: seconds a run token outlives its run.
        python: the interpreter (default: this one).
        access_log: log every request in its log file (benchmarks count them).
    """
    tmp = make_tmpdir("server")
    data_dir = tmp / "data"
    log_path = tmp / "server.log"
    url_db = store_url or f"sqlite:///{data_dir / 'conveyor.db'}"
    password = secrets.token_hex(12)
    last: ServerStartError | None = None
    for _ in range(3):
        port = free_port()
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("CONVEYOR_SERVER", "CONVEYOR_API", "CONVEYOR_STORE"))
        }
        env.update(extra_env or {})
        env["CONVEYOR_ADMIN_PASSWORD"] = password
        argv = [
            python or sys.executable,
            "-m",
            "conveyor.cli",
            "server",
            "start",
            "--host",
            HOST,
            "--port",
            str(port),
            "--data-dir",
            str(data_dir),
            "--store-url",
            url_db,
            "--workers",
            str(workers),
            "--run-token-leeway",
            str(leeway),
            *(["--access-log"] if access_log else []),
        ]
        proc = spawn_server(argv, log_path=log_path, env=env)
        url = f"http://{HOST}:{port}"
        handle = ConveyorServer(url, url_db, data_dir, password, "", proc, log_path, tmp)

        def ready(handle: ConveyorServer = handle) -> None:
            status, _ = handle.request("GET", "/ready")
            assert status == 200

        try:
            wait_until(ready, proc=proc, what="conveyor server", log_path=log_path, timeout=90)
        except ServerStartError as exc:
            stop_server(proc)
            last = exc
            if exc.port_clash:
                continue
            break
        session = handle.login("admin", password)
        handle.admin_key = handle.api(
            "POST", "/api/service-accounts", {"name": "tests-admin", "role": "admin"}, token=session
        )["api_key"]
        return handle
    remove_tmpdir(tmp)
    pytest.fail(f"the conveyor server did not start: {last}\n{log_tail(log_path)}", pytrace=False)


@pytest.fixture(scope="session")
def conveyor_server_factory() -> Iterator[Callable[..., ConveyorServer]]:
    """``start(store_url=None, workers=1, leeway=60.0)``: one more server, stopped at session end."""
    started: list[ConveyorServer] = []

    def start(store_url: str | None = None, **kwargs: Any) -> ConveyorServer:
        server = start_conveyor_server(store_url, **kwargs)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def conveyor_server(conveyor_server_factory: Callable[..., ConveyorServer]) -> ConveyorServer:
    """A conveyor server over SQLite, for the session."""
    return conveyor_server_factory()


@pytest.fixture(scope="session")
def conveyor_server_postgres(
    conveyor_server_factory: Callable[..., ConveyorServer], postgres_server: Any
) -> ConveyorServer:
    """A conveyor server over a PostgreSQL database of its own, for the session."""
    name = postgres_server.create_database("server")
    return conveyor_server_factory(postgres_server.url(name))


@pytest.fixture(scope="session")
def conveyor_server_short_leeway(conveyor_server_factory: Callable[..., ConveyorServer]) -> ConveyorServer:
    """A conveyor server over SQLite, for the session, whose run tokens outlive their run by :data:`SHORT_LEEWAY` s."""
    return conveyor_server_factory(leeway=SHORT_LEEWAY)
