"""Seeing a run happen: progress lines, step-prefixed output, live logs, Ctrl-C and cached logs."""

from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conveyor import Client
from tests_support import ok, write_module

PIPE = """
import sys, time
from typing import Annotated
from conveyor import pipeline, step

@step
def numbers() -> Annotated[list[int], "numbers"]:
    print("making numbers")
    return [1, 2, 3]

@step(enable_cache=False)
def chatty(numbers: list[int], lines: int = 3, pause: float = 0.0) -> int:
    for i in range(lines):
        print(f"line {i}", flush=True)
        time.sleep(pause)
    return sum(numbers)

@pipeline(name="progress")
def progress(lines: int = 3, pause: float = 0.0):
    chatty(numbers(), lines=lines, pause=pause)

if __name__ == "__main__":
    import json
    progress(**json.loads(sys.argv[1]) if len(sys.argv) > 1 else {})
"""


def _env(repo: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, "CONVEYOR_REPOSITORY": str(repo), **extra}
    env.pop("CI", None)
    return env


def test_a_run_says_what_it_runs_in_plain_lines_when_not_a_terminal(repo: Path) -> None:
    write_module(repo, "progress_pipe", PIPE)
    first = subprocess.run(
        [sys.executable, "progress_pipe.py"], cwd=repo, env=_env(repo), capture_output=True, text=True
    )
    assert first.returncode == 0, first.stderr
    run = Client().get_pipeline("progress").last_run
    # On a server, a line naming it comes first (see test_server_auth); the run's lines follow.
    lines = [line for line in first.stderr.splitlines() if not line.startswith("conveyor: using ")]
    assert lines[0] == f"conveyor | running pipeline 'progress' as run {run.name} on stack 'default' (2 steps)"
    assert "conveyor | numbers: running" in lines
    assert any(line.startswith("conveyor | chatty: completed in ") for line in lines)
    assert lines[-1].startswith(f"conveyor | run {run.name} completed in ")
    assert "\x1b[" not in first.stderr  # no colour codes in a pipe
    # Step output is told apart by the step's id on the terminal, and stays plain in the step's log.
    assert "[chatty] line 0" in first.stdout and "[numbers] making numbers" in first.stdout
    assert run.steps["chatty"].logs().startswith("line 0\n")
    second = subprocess.run(
        [sys.executable, "progress_pipe.py"], cwd=repo, env=_env(repo), capture_output=True, text=True
    )
    assert "conveyor | numbers: cached" in second.stderr.splitlines()


def test_on_a_terminal_the_progress_is_coloured(repo: Path) -> None:
    write_module(repo, "progress_pipe", PIPE)
    pid, fd = pty.fork()
    if pid == 0:  # the child: stdin, stdout and stderr are the pseudo-terminal
        os.chdir(repo)
        os.execve(sys.executable, [sys.executable, "progress_pipe.py"], _env(repo))
    output = b""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 1)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            output += chunk
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0, output.decode(errors="replace")
    text = output.decode(errors="replace")
    assert "\x1b[" in text  # colour
    assert "conveyor | chatty: completed in" in text.replace("\x1b[0m", "")
    assert "[chatty] line 2" in text


def test_conveyor_quiet_keeps_a_run_silent(repo: Path) -> None:
    write_module(repo, "progress_pipe", PIPE)
    done = subprocess.run(
        [sys.executable, "progress_pipe.py"],
        cwd=repo,
        env=_env(repo, CONVEYOR_QUIET="1"),
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0 and "conveyor |" not in done.stderr


@pytest.mark.parametrize("mode", ["thread", "process"])
def test_a_steps_log_reaches_the_store_while_it_runs_and_survives_a_kill(repo: Path, mode: str) -> None:
    write_module(repo, "progress_pipe", PIPE)
    client = Client()
    client.register_component("orchestrator", "m", "local", {"mode": mode})
    client.register_stack("m", {"orchestrator": "m", "artifact_store": "default"})
    driver = subprocess.Popen(
        [sys.executable, "progress_pipe.py", '{"lines": 40, "pause": 0.25}'],
        cwd=repo,
        env=_env(repo, CONVEYOR_STACK="m"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        seen = ""
        deadline = time.monotonic() + 60
        while seen.count("\n") < 5 and time.monotonic() < deadline:
            time.sleep(0.3)
            runs = Client().list_runs("progress") if _has_pipeline() else []
            if runs and "chatty" in runs[0].steps:
                seen = runs[0].steps["chatty"].logs()
        assert seen.count("\n") >= 5, f"only {seen!r} reached the store while the step ran"
        assert driver.poll() is None, "the step ended before its log was read"
        driver.send_signal(signal.SIGKILL)
        driver.wait()
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()
    time.sleep(1.5)  # an orphaned step process ends itself within a fraction of this
    run = Client().list_runs("progress")[0]
    assert run.status == "failed"
    kept = run.steps["chatty"].logs()
    assert kept.startswith("line 0\nline 1\n") and kept.count("\n") >= 5


def _has_pipeline() -> bool:
    from conveyor.exceptions import NotFoundError

    try:
        Client().get_pipeline("progress")
    except NotFoundError:
        return False
    return True


def test_the_logs_of_a_cached_step_say_where_they_come_from(repo: Path) -> None:
    write_module(repo, "progress_pipe", PIPE)
    import progress_pipe

    first = progress_pipe.progress()
    second = progress_pipe.progress()
    assert second.steps["numbers"].cached
    from tests_support import invoke

    result = invoke("run", "describe", second.name, "--logs", "numbers")
    assert result.exit_code == 0
    assert "making numbers" in result.stdout
    assert f"came from the cache: these are the logs of its run in {first.name}" in result.stderr
    assert "making numbers" in ok("run", "describe", first.name, "--logs", "numbers")


def test_ctrl_c_in_a_script_stops_the_run_with_one_line(repo: Path) -> None:
    write_module(repo, "progress_pipe", PIPE)
    driver = subprocess.Popen(
        [sys.executable, "progress_pipe.py", '{"lines": 200, "pause": 0.1}'],
        cwd=repo,
        env=_env(repo),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert driver.stdout is not None
    for line in driver.stdout:  # the step is running once it prints
        if line.startswith("[chatty] line 1"):
            break
    driver.send_signal(signal.SIGINT)
    _, err = driver.communicate(timeout=60)
    assert driver.returncode == 130
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert lines[-1] == "conveyor: stopped pipeline 'progress'; its run is recorded as stopped"
    assert lines[-2].startswith("conveyor | run ") and lines[-2].endswith("(1 completed, 1 stopped)")
    assert Client().get_pipeline("progress").last_run.status == "stopped"
