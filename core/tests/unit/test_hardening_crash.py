"""A killed or stopped driver leaves nothing running and nothing rewritten (real signals, real processes)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from conveyor import Client
from conveyor.stores import current_process_identity, process_is_gone
from tests_support import write_module

PIPE = """
import os, subprocess, sys, time
from typing import Annotated
from conveyor import BaseMaterializer, pipeline, step

class SlowSave(BaseMaterializer):
    ASSOCIATED_TYPES = ()
    def save(self, data):
        with self.open("part.bin", "wb") as f:
            f.write(b"half")
        with open("saving", "w") as f:
            f.write("1")
        time.sleep(60)
    def load(self, data_type):
        return None

@step
def sleeper(seconds: float) -> Annotated[int, "value"]:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    with open("pids.txt", "a") as f:
        f.write(f"{os.getpid()} {child.pid}\\n")
    time.sleep(seconds)
    return 1

@step(output_materializers=SlowSave)
def slow_save() -> Annotated[int, "value"]:
    return 1

@pipeline(name="crash")
def crash(seconds: float = 30.0):
    sleeper(seconds=seconds)

@pipeline(name="halfsave")
def halfsave():
    slow_save()

@pipeline(name="timed")
def timed():
    sleeper.with_options(timeout=6)(seconds=60.0)

if __name__ == "__main__":
    import json
    which, stack, params = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    {"crash": crash, "halfsave": halfsave}[which].with_options(stack=stack)(**params)
"""


def _setup(repo: Path) -> None:
    write_module(repo, "crashpipe", PIPE)
    client = Client()
    client.register_component("orchestrator", "procs", "local", {"mode": "process"})
    client.register_stack("procs", {"orchestrator": "procs", "artifact_store": "default"})


def _start(repo: Path, which: str = "crash", stack: str = "procs", params: str = "{}") -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "crashpipe.py", which, stack, params],
        cwd=repo,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _wait_for(path: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not (path.exists() and path.stat().st_size > 0):
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def _pids(repo: Path) -> list[int]:
    return [int(p) for line in (repo / "pids.txt").read_text().split("\n") if line for p in line.split()]


def _gone_within(pids: list[int], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if all(not psutil.pid_exists(p) or psutil.Process(p).status() == psutil.STATUS_ZOMBIE for p in pids):
            return True
        time.sleep(0.1)
    return False


def _kill_leftovers(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_a_killed_driver_takes_its_step_processes_and_their_children_with_it(repo: Path) -> None:
    _setup(repo)
    driver = _start(repo, params='{"seconds": 3}')
    _wait_for(repo / "pids.txt")
    pids = _pids(repo)
    driver.kill()
    driver.wait()
    driver.stderr.close()
    try:
        assert _gone_within(pids, 5), "step process or its child outlived the killed driver"
    finally:
        _kill_leftovers(pids)
    time.sleep(4)  # past the moment the step would have finished
    run = Client().get_pipeline("crash").last_run  # opening the store settles the dead run
    assert run.status == "failed" and "killed" in (run.error or "")
    assert run.steps["sleeper"].status == "failed"
    assert Client().list_artifacts("value") == []


def test_sigterm_stops_the_run_like_ctrl_c(repo: Path) -> None:
    _setup(repo)
    driver = _start(repo)
    _wait_for(repo / "pids.txt")
    pids = _pids(repo)
    driver.send_signal(signal.SIGTERM)
    try:
        _, err = driver.communicate(timeout=30)
        assert _gone_within(pids, 10)
    finally:
        _kill_leftovers([*pids, driver.pid])
    run = Client().get_pipeline("crash").last_run
    assert run.status == "stopped"
    assert run.steps["sleeper"].status == "stopped"
    assert b"Traceback" not in err
    assert driver.returncode == 130


def test_a_step_timeout_kills_the_whole_process_tree(repo: Path) -> None:
    _setup(repo)
    import crashpipe

    from conveyor.exceptions import StepFailedError

    with pytest.raises(StepFailedError, match="timed out"):
        crashpipe.timed()
    pids = _pids(repo)
    try:
        assert _gone_within(pids, 5), "the step's child outlived its timeout"
    finally:
        _kill_leftovers(pids)


def test_a_killed_save_leaves_no_temporary_folder_after_the_next_open(repo: Path) -> None:
    _setup(repo)
    driver = _start(repo, which="halfsave", stack="default")
    _wait_for(repo / "saving")
    artifacts = repo / ".conveyor" / "artifacts" / "halfsave"
    assert [p for p in artifacts.rglob(".tmp-*")], "the save never started"
    driver.kill()
    driver.wait()
    driver.stderr.close()
    run = Client().get_pipeline("halfsave").last_run
    assert run.status == "failed"
    assert [p for p in artifacts.rglob(".tmp-*")] == []
    assert Client().list_artifacts() == []


def test_liveness_never_fails_a_live_owner() -> None:
    _, pid, started = current_process_identity()
    assert started is not None
    assert not process_is_gone(pid, started)
    assert not process_is_gone(pid, None)  # start time unknown: alive is alive
    # Linux's boot time is whole seconds that follow clock adjustments: a reading a second off is the same process.
    assert not process_is_gone(pid, started - 1.0) and not process_is_gone(pid, started + 1.0)
    assert process_is_gone(pid, started - 1000)  # the PID was reused by another process
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert process_is_gone(child.pid, None)
