"""Servers as children of the test process: they start, answer, stop by PID, and never outlive it."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from conveyor_testing.processes import (
    ServerStartError,
    free_port,
    log_tail,
    run_child,
    spawn_server,
    stop_server,
    wait_for_http,
    wait_for_port,
)


def _dead(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    # A zombie is dead; it only waits for whoever adopted it to reap it.
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def _cmdline(pid: int) -> list[bytes]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")


def _wait_dead(pid: int, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while not _dead(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return _dead(pid)


def _stand_in_parent(tmp_path: Path, then: str) -> tuple[subprocess.Popen[str], int]:
    """A Python process that starts a long "server" with spawn_server, prints its PID, then runs ``then``."""
    script = textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        from conveyor_testing.processes import spawn_server
        proc = spawn_server(["sleep", "300"], log_path=Path({str(tmp_path / "log")!r}))
        print(proc.pid, flush=True)
        """
    ) + textwrap.dedent(then)
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    return parent, child


def test_spawned_servers_die_with_their_parent(tmp_path: Path) -> None:
    # The stand-in parent is killed without any chance to clean up, as a killed pytest would be.
    parent, child = _stand_in_parent(tmp_path, "time.sleep(300)\n")
    try:
        assert not _dead(child)
        # The wrapper execs the server itself: the PID soon runs `sleep`, not Python.
        deadline = time.monotonic() + 10
        while _cmdline(child)[:1] != [b"sleep"] and time.monotonic() < deadline:
            time.sleep(0.02)
        assert _cmdline(child)[:2] == [b"sleep", b"300"]
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=10)
        assert parent.stdout is not None
        parent.stdout.close()
    assert _wait_dead(child)


def test_servers_left_running_are_stopped_when_the_interpreter_exits(tmp_path: Path) -> None:
    parent, child = _stand_in_parent(tmp_path, "sys.exit(0)\n")
    assert parent.wait(timeout=30) == 0
    assert parent.stdout is not None
    parent.stdout.close()
    assert _dead(child)  # stopped by the exit handler, before the interpreter was gone


def test_stop_server_stops_by_pid_and_escalates_to_sigkill(tmp_path: Path) -> None:
    stubborn = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up', flush=True); time.sleep(300)"
    )
    log = tmp_path / "stubborn.log"
    proc = spawn_server([sys.executable, "-c", stubborn], log_path=log)
    wait_until_logged(log, "up")
    started = time.monotonic()
    stop_server(proc, timeout=1)
    assert proc.returncode == -signal.SIGKILL
    assert time.monotonic() - started < 5


def wait_until_logged(log: Path, text: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while text not in log_tail(log) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert text in log_tail(log)


def test_a_server_that_exits_while_starting_fails_with_its_log(tmp_path: Path) -> None:
    log = tmp_path / "crash.log"
    proc = spawn_server([sys.executable, "-c", "import sys; print('bad config line 3'); sys.exit(7)"], log_path=log)
    with pytest.raises(ServerStartError) as info:
        wait_for_port(free_port(), proc=proc, what="crasher", log_path=log, timeout=30)
    assert "crasher exited with code 7 while starting" in str(info.value)
    assert "bad config line 3" in str(info.value)
    assert not info.value.port_clash


def test_waiting_for_a_port_and_for_http(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "http.log"
    proc = spawn_server(
        [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port)], log_path=log, cwd=tmp_path
    )
    try:
        assert wait_for_port(port, proc=proc, what="http.server", log_path=log) >= 0
        assert wait_for_http(f"http://127.0.0.1:{port}/", proc=proc, what="http.server", log_path=log) >= 0
    finally:
        stop_server(proc)
    assert proc.returncode is not None


def test_a_server_that_never_answers_times_out_with_the_last_error(tmp_path: Path) -> None:
    log = tmp_path / "silent.log"
    proc = spawn_server(["sleep", "300"], log_path=log)
    try:
        with pytest.raises(ServerStartError, match="not ready after 1 s"):
            wait_for_port(free_port(), proc=proc, what="silent", log_path=log, timeout=1)
    finally:
        stop_server(proc)


def test_a_port_clash_is_recognised() -> None:
    assert ServerStartError("x exited:\nbind: Address already in use").port_clash
    assert ServerStartError("x exited:\nlisten tcp 127.0.0.1:5000: bind: address already in use").port_clash


def test_run_child_returns_the_output_of_a_one_shot_command() -> None:
    done = run_child([sys.executable, "-c", "import sys; print('out'); print('err', file=sys.stderr); sys.exit(3)"])
    assert done.returncode == 3
    assert done.stdout.decode().split() == ["out", "err"]
