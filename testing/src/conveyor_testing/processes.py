"""Servers as children of the test process: start, wait for, stop, and never leave behind.

Every fixture that starts a server (MariaDB, PostgreSQL, SeaweedFS, dockerd, a
registry, Prefect, Airflow) goes through :func:`spawn_server`:

* The child runs in a session of its own, so a Ctrl-C at the terminal reaches
  pytest only, which then stops the servers in order through fixture teardown.
* The child dies with the test process, also when that is killed outright:
  the command is started through a small Python wrapper that, *after*
  ``exec``, drops privileges if asked, sets ``PR_SET_PDEATHSIG`` with
  ``prctl`` and then ``exec``\\ s the server. Nothing runs between ``fork``
  and ``exec`` but CPython's own async-signal-safe child code (no
  ``preexec_fn``, no ``ctypes`` in a forked child). The signal is tied to the
  thread that started the child; pytest runs fixtures in its main thread.
* Children still running when the interpreter exits are stopped by PID
  (:func:`stop_children`, registered with :mod:`atexit`); fixtures stop theirs
  in teardown with :func:`stop_server`.

Temporary folders of servers are tagged with the PID of their test process
(:func:`make_tmpdir`), so a later session removes those of a killed one.
"""

from __future__ import annotations

import atexit
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn, TypeVar

import pytest

__all__ = [
    "BOOTSTRAP_HINT",
    "HOST",
    "START_TIMEOUT",
    "STOP_TIMEOUT",
    "ServerStartError",
    "find_binary",
    "free_port",
    "free_ports",
    "log_tail",
    "make_tmpdir",
    "missing",
    "note_outside_path",
    "reap_stale_tmpdirs",
    "remove_tmpdir",
    "run_child",
    "spawn_server",
    "start_with_retries",
    "stop_children",
    "stop_server",
    "wait_for_http",
    "wait_for_port",
    "wait_until",
]

BOOTSTRAP_HINT = "run: bash scripts/bootstrap.sh"
HOST = "127.0.0.1"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0

_T = TypeVar("_T")

# Runs after exec, as an ordinary process: argv is PARENT SIGNAL UID GID COMMAND...
# (UID and GID are -1 to keep them). Credentials change first: the kernel
# clears the parent-death signal whenever they change.
_DEATH_WRAPPER = """\
import ctypes, os, sys
parent, sig, uid, gid = (int(a) for a in sys.argv[1:5])
if uid >= 0:
    os.setgroups([])
    os.setgid(gid)
    os.setuid(uid)
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(1, sig, 0, 0, 0) != 0:
    sys.exit("prctl(PR_SET_PDEATHSIG) failed: " + os.strerror(ctypes.get_errno()))
if os.getppid() != parent:
    os.kill(os.getpid(), sig)
    sys.exit(1)
os.execvp(sys.argv[5], sys.argv[5:])
"""

# PID -> (the process that started it, the child): a forked copy of this process must not stop them.
_children: dict[int, tuple[int, subprocess.Popen[bytes]]] = {}
_children_lock = threading.Lock()

# No proxy handler: a proxy from the environment must never see local traffic.
_LOCAL_HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def missing(what: str) -> NoReturn:
    """Fail the requesting test with one line naming what is not installed."""
    pytest.fail(f"{what} not found; {BOOTSTRAP_HINT}", pytrace=False)


def find_binary(name: str, extra_dirs: Sequence[str] = ()) -> str | None:
    """``name`` on PATH, else in one of ``extra_dirs`` (server binaries often live off PATH)."""
    found = shutil.which(name)
    if found:
        return found
    for d in extra_dirs:
        path = os.path.join(d, name)
        if os.access(path, os.X_OK):
            return path
    return None


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


def _wrapped(argv: Sequence[str], death_signal: int, user: str | None) -> list[str]:
    uid = gid = -1
    if user is not None:
        pw = pwd.getpwnam(user)
        uid, gid = pw.pw_uid, pw.pw_gid
    if not argv:
        raise ValueError("no command to start")
    # -I -S: no site-packages and no PYTHON* variables, so the wrapper starts fast and alike everywhere.
    return [
        sys.executable,
        "-I",
        "-S",
        "-c",
        _DEATH_WRAPPER,
        str(os.getpid()),
        str(int(death_signal)),
        str(uid),
        str(gid),
        *argv,
    ]


def spawn_server(
    argv: Sequence[str],
    *,
    log_path: Path,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    user: str | None = None,
    death_signal: int = signal.SIGTERM,
) -> subprocess.Popen[bytes]:
    """Start a server process that dies when this process dies (see the module's docstring).

    Output (stdout and stderr) is appended to ``log_path``. With ``user``, the
    server runs as that system user (PostgreSQL refuses to run as root).
    ``death_signal`` is what the server gets if the test process dies first.
    The process is stopped at interpreter exit unless :func:`stop_server`
    stopped it before.
    """
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            _wrapped(argv, death_signal, user),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=env,
            start_new_session=True,
        )
    with _children_lock:
        _children[proc.pid] = (os.getpid(), proc)
    return proc


def run_child(
    argv: Sequence[str],
    *,
    timeout: float = START_TIMEOUT,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    user: str | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """Run a one-shot command (``initdb`` and the like) to its end; it is killed if this process dies.

    Returns the completed process with stdout and stderr together in ``stdout``.
    """
    return subprocess.run(
        _wrapped(argv, signal.SIGKILL, user),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=cwd,
        env=env,
        timeout=timeout,
        check=False,
    )


def stop_server(
    proc: subprocess.Popen[bytes],
    *,
    stop_signal: int = signal.SIGTERM,
    timeout: float = STOP_TIMEOUT,
    group: bool = False,
) -> None:
    """Stop a process started by :func:`spawn_server`, by its PID: signal, wait, then SIGKILL.

    With ``group``, whatever is left of the process group it leads (workers a
    server started itself) is killed afterwards.
    """
    try:
        if proc.poll() is None:
            try:
                proc.send_signal(stop_signal)
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=timeout)
        if group:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
    finally:
        with _children_lock:
            _children.pop(proc.pid, None)


@atexit.register
def stop_children() -> None:
    """Stop every server this process started and has not stopped yet (runs at interpreter exit)."""
    with _children_lock:
        left = [proc for owner, proc in _children.values() if owner == os.getpid()]
    for proc in left:
        stop_server(proc, timeout=5.0, group=True)


def log_tail(path: Path, lines: int = 15) -> str:
    """Last lines of a server log, for failure messages."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


class ServerStartError(RuntimeError):
    """A server did not come up; the message carries its log tail."""

    @property
    def port_clash(self) -> bool:
        """Whether the server failed because its port was taken (worth another try on another port)."""
        text = str(self).lower()
        return "already in use" in text or "address in use" in text


def wait_until(
    probe: Callable[[], object],
    *,
    proc: subprocess.Popen[bytes],
    what: str,
    log_path: Path,
    timeout: float = START_TIMEOUT,
    interval: float = 0.2,
) -> float:
    """Call ``probe`` until it returns without raising; return the seconds it took.

    A probe that returns ``False`` counts as not ready. Raises
    :class:`ServerStartError` (with the log's tail) when the process exits
    or after ``timeout`` seconds.
    """
    start = time.monotonic()
    deadline = start + timeout
    last: object = None
    while True:
        if proc.poll() is not None:
            raise ServerStartError(f"{what} exited with code {proc.returncode} while starting:\n{log_tail(log_path)}")
        try:
            if probe() is not False:
                return time.monotonic() - start
            last = "not ready"
        except Exception as exc:  # any failure just means "not ready yet"
            last = exc
        if time.monotonic() >= deadline:
            raise ServerStartError(f"{what} not ready after {timeout:.0f} s (last: {last!r}):\n" + log_tail(log_path))
        time.sleep(interval)


def wait_for_port(
    port: int,
    *,
    proc: subprocess.Popen[bytes],
    what: str,
    log_path: Path,
    host: str = HOST,
    timeout: float = START_TIMEOUT,
) -> float:
    """Wait until ``host:port`` accepts TCP connections (see :func:`wait_until`)."""

    def probe() -> None:
        with socket.create_connection((host, port), timeout=1):
            pass

    return wait_until(probe, proc=proc, what=what, log_path=log_path, timeout=timeout)


def wait_for_http(
    url: str,
    *,
    proc: subprocess.Popen[bytes],
    what: str,
    log_path: Path,
    timeout: float = START_TIMEOUT,
) -> float:
    """Wait until a GET of ``url`` answers 200, never through a proxy (see :func:`wait_until`)."""

    def probe() -> bool:
        try:
            with _LOCAL_HTTP.open(url, timeout=2) as resp:
                return resp.status == 200
        except urllib.error.HTTPError:
            return False

    return wait_until(probe, proc=proc, what=what, log_path=log_path, timeout=timeout, interval=0.25)


def start_with_retries(start: Callable[[], _T], what: str, attempts: int = 3) -> _T:
    """Call ``start`` until it works; fail the test with its log tail unless a port clash is worth another try.

    A port picked by :func:`free_port` can be taken by someone else before
    the server binds it; only that case is tried again.
    """
    for attempt in range(attempts):
        try:
            return start()
        except ServerStartError as exc:
            if exc.port_clash and attempt + 1 < attempts:
                continue
            pytest.fail(f"{what} did not start: {exc}", pytrace=False)
    raise AssertionError("unreachable")


_TMP_KINDS = ("mariadb", "postgres", "s3", "mlflow", "server")
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
    """Remove server temp dirs whose owning test process is gone."""
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
