"""Real MariaDB and PostgreSQL servers for the test suites.

Each server is started once per pytest session, in its own temporary data
directory, listening on 127.0.0.1 only, on a free port. The fixtures hand out
SQLAlchemy URLs:

* ``mariadb_url`` / ``postgres_url``: one empty database for the session.
* ``fresh_mariadb_url`` / ``fresh_postgres_url``: a new, uniquely named empty
  database for every test that asks (migration tests need a blank schema).

Servers are started with ``PR_SET_PDEATHSIG`` so they die with the pytest
process even when it is killed, and are stopped by PID at session end. The
process helpers here (``free_port``, ``spawn_server``, ``stop_server``) are
shared with :mod:`conveyor_testing.s3_server`.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import dataclasses
import glob
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import NoReturn

import pytest

__all__ = [
    "BOOTSTRAP_HINT",
    "SqlServer",
    "fresh_mariadb_url",
    "fresh_postgres_url",
    "free_port",
    "free_ports",
    "make_tmpdir",
    "mariadb_server",
    "mariadb_url",
    "postgres_server",
    "postgres_url",
    "spawn_server",
    "stop_server",
    "wait_until",
]

BOOTSTRAP_HINT = "run: bash scripts/bootstrap.sh"
HOST = "127.0.0.1"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0

_PR_SET_PDEATHSIG = 1
# Resolved in the parent: the child between fork and exec should do as little
# as possible, and loading a library there is not safe.
_libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)


# --------------------------------------------------------------------------
# process helpers
# --------------------------------------------------------------------------


def missing(what: str) -> NoReturn:
    """Fail the requesting test with one line naming what is not installed."""
    pytest.fail(f"{what} not found; {BOOTSTRAP_HINT}", pytrace=False)


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def free_ports(count: int) -> list[int]:
    """Return ``count`` distinct free ports (all held open while picking)."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            socks.append(s)
            s.bind((HOST, 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _child_setup(death_signal: int, uid: int | None, gid: int | None) -> Callable[[], None]:
    parent = os.getpid()

    def setup() -> None:
        # Drop privileges first: the kernel clears the parent-death signal
        # whenever the credentials change, so prctl must come after setuid.
        if uid is not None and gid is not None:
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
        _libc.prctl(_PR_SET_PDEATHSIG, death_signal, 0, 0, 0)
        # The parent may have died before prctl took effect.
        if os.getppid() != parent:
            os.kill(os.getpid(), death_signal)

    return setup


def spawn_server(
    argv: Sequence[str],
    *,
    log_path: Path,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    user: str | None = None,
    death_signal: int = signal.SIGTERM,
) -> subprocess.Popen[bytes]:
    """Start a server process that dies when this process dies.

    (Strictly: when the thread that calls this exits, which for pytest
    fixtures is the main thread.)

    Output goes to ``log_path``. With ``user``, the process runs as that
    system user (used for PostgreSQL, which refuses to run as root).
    """
    uid = gid = None
    if user is not None:
        pw = pwd.getpwnam(user)
        uid, gid = pw.pw_uid, pw.pw_gid
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=env,
            # Own session: a Ctrl-C at the terminal reaches pytest only, which
            # then stops the servers in order through fixture teardown.
            start_new_session=True,
            preexec_fn=_child_setup(death_signal, uid, gid),
        )


def stop_server(
    proc: subprocess.Popen[bytes],
    *,
    stop_signal: int = signal.SIGTERM,
    timeout: float = STOP_TIMEOUT,
) -> None:
    """Stop a process started by :func:`spawn_server`: signal, wait, then SIGKILL."""
    if proc.poll() is not None:
        return
    try:
        proc.send_signal(stop_signal)
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=timeout)


_TMP_KINDS = ("mariadb", "postgres", "s3", "server")
_OWNER_FILE = "owner.pid"
_EXTRA_FILE = "outside-paths.txt"


def make_tmpdir(kind: str) -> Path:
    """Create a server's temp dir, tagged with this process's PID.

    Dirs of earlier sessions whose process was killed (and so could not
    clean up) are removed first.
    """
    reap_stale_tmpdirs()
    tmp = Path(tempfile.mkdtemp(prefix=f"conveyor-{kind}-"))
    (tmp / _OWNER_FILE).write_text(f"{os.getpid()}\n")
    return tmp


def note_outside_path(tmp: Path, path: Path) -> None:
    """Record a file a server creates outside ``tmp``, so a reaper can remove it."""
    with open(tmp / _EXTRA_FILE, "a") as f:
        f.write(f"{path}\n")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def reap_stale_tmpdirs() -> None:
    """Remove server temp dirs whose owning pytest process is gone."""
    for kind in _TMP_KINDS:
        for d in Path(tempfile.gettempdir()).glob(f"conveyor-{kind}-*"):
            try:
                pid = int((d / _OWNER_FILE).read_text())
            except (OSError, ValueError):
                continue  # not tagged: not ours, or still being set up
            if _pid_alive(pid):
                continue
            remove_tmpdir(d)


def remove_tmpdir(tmp: Path) -> None:
    """Remove a server temp dir and the outside files recorded for it."""
    try:
        extra = (tmp / _EXTRA_FILE).read_text().split()
    except OSError:
        extra = []
    for path in extra:
        Path(path).unlink(missing_ok=True)
    shutil.rmtree(tmp, ignore_errors=True)


def log_tail(path: Path, lines: int = 15) -> str:
    """Last lines of a server log, for failure messages."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def wait_until(
    probe: Callable[[], object],
    *,
    proc: subprocess.Popen[bytes],
    what: str,
    log_path: Path,
    timeout: float = START_TIMEOUT,
) -> float:
    """Call ``probe`` until it stops raising; return the seconds it took.

    Gives up (raising ``ServerStartError``) when the process exits or after
    ``timeout`` seconds.
    """
    start = time.monotonic()
    deadline = start + timeout
    last: BaseException | None = None
    while True:
        if proc.poll() is not None:
            raise ServerStartError(f"{what} exited with code {proc.returncode} while starting:\n{log_tail(log_path)}")
        try:
            probe()
            return time.monotonic() - start
        except Exception as exc:  # any failure just means "not ready yet"
            last = exc
        if time.monotonic() >= deadline:
            raise ServerStartError(
                f"{what} not ready after {timeout:.0f} s (last error: {last!r}):\n" + log_tail(log_path)
            )
        time.sleep(0.2)


class ServerStartError(RuntimeError):
    """A server did not come up; the message carries its log tail."""

    @property
    def port_clash(self) -> bool:
        text = str(self).lower()
        return "already in use" in text or "address in use" in text


def _start_with_retries(start: Callable[[], SqlServer], what: str, attempts: int = 3) -> SqlServer:
    # A port picked by free_port() can be taken by someone else before the
    # server binds it; only that case is worth another try.
    for attempt in range(attempts):
        try:
            return start()
        except ServerStartError as exc:
            if exc.port_clash and attempt + 1 < attempts:
                continue
            pytest.fail(f"{what} did not start: {exc}", pytrace=False)
    raise AssertionError("unreachable")


def _find_binary(name: str, extra_dirs: Sequence[str] = ()) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for d in extra_dirs:
        path = os.path.join(d, name)
        if os.access(path, os.X_OK):
            return path
    return None


# --------------------------------------------------------------------------
# the server handle
# --------------------------------------------------------------------------


@dataclasses.dataclass
class SqlServer:
    """A running database server started by a fixture."""

    dialect: str  # SQLAlchemy "dialect+driver"
    port: int
    user: str
    password: str
    database: str
    proc: subprocess.Popen[bytes]
    tmpdir: Path
    log_path: Path
    stop_signal: int
    startup_seconds: float = 0.0
    host: str = HOST

    def url(self, database: str | None = None) -> str:
        """SQLAlchemy URL of ``database`` (default: the session database)."""
        db = database or self.database
        return f"{self.dialect}://{self.user}:{self.password}@{self.host}:{self.port}/{db}"

    def execute_admin(self, sql: str) -> None:
        """Run one statement outside any transaction, as the server's admin user."""
        if self.dialect.startswith("mysql"):
            import pymysql

            conn = pymysql.connect(
                host=self.host,
                port=self.port,
                user=self.user,
                password=self.password,
                autocommit=True,
                connect_timeout=5,
            )
            try:
                with conn.cursor() as cur:
                    # Never wait long on a table a leaked connection still holds.
                    cur.execute("SET SESSION lock_wait_timeout = 10")
                    cur.execute(sql)
            finally:
                conn.close()
        else:
            import psycopg

            with psycopg.connect(
                host=self.host,
                port=self.port,
                user=self.user,
                password=self.password,
                dbname="postgres",
                autocommit=True,
                connect_timeout=5,
            ) as conn:
                conn.execute(sql)

    def create_database(self, prefix: str = "t") -> str:
        """Create a new uniquely named empty database; return its name."""
        name = f"{prefix}_{secrets.token_hex(6)}"
        q = "`" if self.dialect.startswith("mysql") else '"'
        self.execute_admin(f"CREATE DATABASE {q}{name}{q}")
        return name

    def drop_database(self, name: str) -> None:
        """Drop a database, closing connections tests left open (best effort)."""
        if self.dialect.startswith("mysql"):
            sql = f"DROP DATABASE IF EXISTS `{name}`"
        else:
            sql = f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
        try:
            self.execute_admin(sql)
        except Exception:
            # The whole server goes away at session end anyway.
            pass

    def stop(self) -> None:
        """Stop the server by its PID and remove its data directory."""
        stop_server(self.proc, stop_signal=self.stop_signal)
        remove_tmpdir(self.tmpdir)


# --------------------------------------------------------------------------
# MariaDB
# --------------------------------------------------------------------------

_MARIADB_DIRS = ("/usr/sbin", "/usr/bin", "/usr/libexec", "/usr/local/mysql/bin")


def start_mariadb() -> SqlServer:
    """Start a throwaway MariaDB on 127.0.0.1 with a user and an empty database."""
    mariadbd = _find_binary("mariadbd", _MARIADB_DIRS) or _find_binary("mysqld", _MARIADB_DIRS)
    install_db = _find_binary("mariadb-install-db", _MARIADB_DIRS) or _find_binary("mysql_install_db", _MARIADB_DIRS)
    if mariadbd is None or install_db is None:
        missing("MariaDB server (mariadbd, mariadb-install-db)")
    try:
        import pymysql  # noqa: F401
    except ImportError:
        missing("Python package pymysql")

    def start() -> SqlServer:
        return _start_mariadb(mariadbd, install_db)

    return _start_with_retries(start, "MariaDB")


def _start_mariadb(mariadbd: str, install_db: str) -> SqlServer:
    import pymysql

    tmp = make_tmpdir("mariadb")
    datadir, log_path = tmp / "data", tmp / "server.log"
    user, password, database = "conveyor", secrets.token_hex(12), "conveyor"
    # mariadbd refuses to run as root unless told to run as root.
    run_as = ["--user=root"] if os.geteuid() == 0 else []
    try:
        # --no-defaults first: /etc/mysql/my.cnf points at system paths.
        init = subprocess.run(
            [
                install_db,
                "--no-defaults",
                f"--datadir={datadir}",
                *run_as,
                "--auth-root-authentication-method=socket",
                "--skip-test-db",
                "--skip-name-resolve",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=START_TIMEOUT,
            preexec_fn=_child_setup(signal.SIGKILL, None, None),
        )
        if init.returncode != 0:
            tail = "\n".join(init.stdout.decode(errors="replace").splitlines()[-15:])
            raise ServerStartError(f"mariadb-install-db failed:\n{tail}")

        # Runs at every server start, before clients are served, so the user
        # and database exist without a root login over the socket.
        init_sql = tmp / "init.sql"
        init_sql.write_text(
            f"CREATE USER IF NOT EXISTS '{user}'@'%' IDENTIFIED BY '{password}';\n"
            f"GRANT ALL PRIVILEGES ON *.* TO '{user}'@'%' WITH GRANT OPTION;\n"
            f"CREATE DATABASE IF NOT EXISTS `{database}`;\n"
        )
        port = free_port()
        proc = spawn_server(
            [
                mariadbd,
                "--no-defaults",
                f"--datadir={datadir}",
                *run_as,
                f"--bind-address={HOST}",
                f"--port={port}",
                f"--socket={tmp / 'mysqld.sock'}",
                f"--pid-file={tmp / 'mysqld.pid'}",
                f"--tmpdir={tmp}",
                f"--init-file={init_sql}",
                "--skip-name-resolve",
                "--skip-log-bin",
                "--character-set-server=utf8mb4",
                "--collation-server=utf8mb4_unicode_ci",
                # Test data is throwaway: trade durability for speed.
                "--innodb-flush-log-at-trx-commit=0",
                "--innodb-doublewrite=0",
                "--innodb-buffer-pool-size=64M",
                "--performance-schema=OFF",
            ],
            log_path=log_path,
            cwd=tmp,
        )
    except BaseException:
        remove_tmpdir(tmp)
        raise

    server = SqlServer(
        dialect="mysql+pymysql",
        port=port,
        user=user,
        password=password,
        database=database,
        proc=proc,
        tmpdir=tmp,
        log_path=log_path,
        stop_signal=signal.SIGTERM,
    )

    def probe() -> None:
        pymysql.connect(
            host=HOST,
            port=port,
            user=user,
            password=password,
            database=database,
            connect_timeout=1,
        ).close()

    try:
        server.startup_seconds = wait_until(probe, proc=proc, what="mariadbd", log_path=log_path)
    except BaseException:
        server.stop()
        raise
    return server


# --------------------------------------------------------------------------
# PostgreSQL
# --------------------------------------------------------------------------


def _postgres_bindirs() -> list[str]:
    # Debian keeps the server binaries off PATH, one directory per major version.
    dirs = glob.glob("/usr/lib/postgresql/*/bin")
    return sorted(
        dirs,
        key=lambda d: int(Path(d).parent.name) if Path(d).parent.name.isdigit() else 0,
        reverse=True,
    )


def start_postgres() -> SqlServer:
    """Start a throwaway PostgreSQL on 127.0.0.1 with a user and an empty database."""
    bindirs = _postgres_bindirs()
    postgres = initdb = None
    for d in bindirs:
        if os.access(os.path.join(d, "postgres"), os.X_OK) and os.access(os.path.join(d, "initdb"), os.X_OK):
            postgres, initdb = os.path.join(d, "postgres"), os.path.join(d, "initdb")
            break
    else:
        postgres, initdb = shutil.which("postgres"), shutil.which("initdb")
    if postgres is None or initdb is None:
        missing("PostgreSQL server (postgres, initdb)")
    run_user = None
    if os.geteuid() == 0:
        # PostgreSQL refuses to run as root; Debian's package creates this user.
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            missing("system user 'postgres'")
        run_user = "postgres"
    try:
        import psycopg  # noqa: F401
    except ImportError:
        missing("Python package psycopg")

    def start() -> SqlServer:
        return _start_postgres(postgres, initdb, run_user)

    return _start_with_retries(start, "PostgreSQL")


def _start_postgres(postgres: str, initdb: str, run_user: str | None) -> SqlServer:
    import psycopg

    tmp = make_tmpdir("postgres")
    datadir, log_path = tmp / "data", tmp / "server.log"
    user, password, database = "conveyor", secrets.token_hex(12), "conveyor"
    pwfile = tmp / "pwfile"
    pwfile.write_text(password + "\n")
    env = dict(os.environ, LC_ALL="C", LANG="C")
    env.pop("PGDATA", None)
    uid = gid = None
    if run_user is not None:
        pw = pwd.getpwnam(run_user)
        uid, gid = pw.pw_uid, pw.pw_gid
        env["HOME"] = str(tmp)
        # The server user must own its data directory and reach the temp dir.
        for p in (tmp, pwfile):
            os.chown(p, uid, gid)
    try:
        init = subprocess.run(
            [
                initdb,
                "-D",
                str(datadir),
                "-U",
                user,
                f"--pwfile={pwfile}",
                "--auth=scram-sha-256",
                "--encoding=UTF8",
                "--no-locale",
                "--no-sync",
                "--no-instructions",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd=tmp,
            env=env,
            timeout=START_TIMEOUT,
            preexec_fn=_child_setup(signal.SIGKILL, uid, gid),
        )
        if init.returncode != 0:
            tail = "\n".join(init.stdout.decode(errors="replace").splitlines()[-15:])
            raise ServerStartError(f"initdb failed:\n{tail}")
        pwfile.unlink()

        port = free_port()
        proc = spawn_server(
            [
                postgres,
                "-D",
                str(datadir),
                "-h",
                HOST,
                "-p",
                str(port),
                "-k",
                str(tmp),
                # Test data is throwaway: trade durability for speed.
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "max_connections=200",
            ],
            log_path=log_path,
            cwd=tmp,
            env=env,
            user=run_user,
            # SIGTERM is a "smart" shutdown that waits for every client to
            # leave; SIGINT is the fast one, which is what a dead pytest wants.
            death_signal=signal.SIGINT,
        )
    except BaseException:
        remove_tmpdir(tmp)
        raise

    server = SqlServer(
        dialect="postgresql+psycopg",
        port=port,
        user=user,
        password=password,
        database=database,
        proc=proc,
        tmpdir=tmp,
        log_path=log_path,
        stop_signal=signal.SIGINT,
    )

    def probe() -> None:
        psycopg.connect(
            host=HOST,
            port=port,
            user=user,
            password=password,
            dbname="postgres",
            connect_timeout=1,
        ).close()

    try:
        server.startup_seconds = wait_until(probe, proc=proc, what="postgres", log_path=log_path)
        server.execute_admin(f'CREATE DATABASE "{database}"')
    except BaseException:
        server.stop()
        raise
    return server


# --------------------------------------------------------------------------
# fixtures
# --------------------------------------------------------------------------


@pytest.fixture(scope="session")
def mariadb_server() -> Iterator[SqlServer]:
    """A MariaDB server for the whole session (see :class:`SqlServer`)."""
    server = start_mariadb()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[SqlServer]:
    """A PostgreSQL server for the whole session (see :class:`SqlServer`)."""
    server = start_postgres()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def mariadb_url(mariadb_server: SqlServer) -> str:
    """``mysql+pymysql://`` URL of an empty database, shared by the session."""
    return mariadb_server.url()


@pytest.fixture(scope="session")
def postgres_url(postgres_server: SqlServer) -> str:
    """``postgresql+psycopg://`` URL of an empty database, shared by the session."""
    return postgres_server.url()


@pytest.fixture
def fresh_mariadb_url(mariadb_server: SqlServer) -> Iterator[str]:
    """URL of a new empty MariaDB database, just for this test."""
    name = mariadb_server.create_database()
    yield mariadb_server.url(name)
    mariadb_server.drop_database(name)


@pytest.fixture
def fresh_postgres_url(postgres_server: SqlServer) -> Iterator[str]:
    """URL of a new empty PostgreSQL database, just for this test."""
    name = postgres_server.create_database()
    yield postgres_server.url(name)
    postgres_server.drop_database(name)


if __name__ == "__main__":  # pragma: no cover - manual smoke check
    for starter in (start_mariadb, start_postgres):
        srv = starter()
        print(srv.url(), f"ready in {srv.startup_seconds:.1f} s", file=sys.stderr)
        srv.stop()
