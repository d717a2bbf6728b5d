"""Pipelines run by real Dagster: the local orchestrator's artifacts, parallel ops, failures and killed ops settled."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import dagster_test_pipelines as tp
import psutil
import pytest
from dagster_server_support import dagster_surfaces, run_case_through_server

from conveyor import Client
from conveyor.exceptions import StepFailedError
from conveyor_testing.conformance import OrchestratorContract, case, load_pipeline

pytestmark = [pytest.mark.integration, pytest.mark.dagster]


class TestDagsterConformance(OrchestratorContract):
    """Every conformance case run by Dagster's multiprocess executor (python mode): the local stack's artifacts."""

    @pytest.fixture
    def conformance_stack(self, dagster_stack: str) -> str:
        return dagster_stack

    def check_engine_run(self, case: Any, run: Any, reference: Any, request: pytest.FixtureRequest) -> None:
        assert run.orchestrator == "dagster"
        dagster_run = request.getfixturevalue("instance").get_run_by_id(run.orchestrator_run_id)
        assert dagster_run is not None and dagster_run.is_success != case.fails
        assert dagster_run.job_name == case.pipeline

    def run_through_server(self, case: Any, stack: str, request: pytest.FixtureRequest, runner_key: str) -> Any:
        return run_case_through_server(case, stack, request, runner_key)

    def server_leak_surfaces(self, run: Any, request: pytest.FixtureRequest) -> list[Any]:
        return dagster_surfaces(request)


def test_independent_steps_run_at_the_same_time(dagster_stack: str) -> None:
    run = tp.naps.with_options(enable_cache=False, stack=dagster_stack)(seconds=4.0)
    (a_start, a_end), (b_start, b_end) = run.steps["spans"].output.load()
    assert a_start < b_end and b_start < a_end, "the two naps did not overlap"


def test_a_failing_step_fails_the_run_with_one_line(dagster_stack: str) -> None:
    pipe = load_pipeline(case("failing_step")).with_options(enable_cache=False, stack=dagster_stack)
    with pytest.raises(StepFailedError) as info:
        pipe()
    message = str(info.value)
    assert "\n" not in message
    assert "failed on Dagster" in message and "'explode'" in message and "bad input 3" in message
    run = Client().get_pipeline("failing_step").last_run
    assert run.status == "failed" and run.steps["after_explode"].status == "skipped"


def test_a_step_dagster_retries_completes(dagster_stack: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVEYOR_ATTEMPTS_FILE", str(tmp_path / "attempts"))
    run = tp.flaky.with_options(enable_cache=False, stack=dagster_stack)()
    assert run.status == "completed"
    assert run.steps["wobble"].record.attempts == 2
    assert run.steps["after_wobble"].output.load() == 2


def _step_processes(deployment_id: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        if deployment_id in (proc.info["cmdline"] or []):
            found.append(proc)
    return found


def test_a_killed_op_leaves_a_settled_run_and_nothing_running(dagster_stack: str) -> None:
    with pytest.raises(StepFailedError) as info:
        tp.killed.with_options(enable_cache=False, stack=dagster_stack)()
    assert "\n" not in str(info.value)
    run = Client().get_pipeline("killed").last_run
    assert run.status == "failed"
    doomed = run.steps["doomed"]
    assert doomed.status == "failed" and "killed" in (doomed.record.error or "")
    assert run.steps["after_doomed"].status == "skipped"
    deadline = time.monotonic() + 10
    while _step_processes(run.record.deployment_id) and time.monotonic() < deadline:
        time.sleep(0.2)  # the step process ends itself once its op is gone
    assert _step_processes(run.record.deployment_id) == []


STOPPABLE = """
import sys
sys.path.insert(0, sys.argv[1])
import dagster_test_pipelines as tp

if __name__ == "__main__":
    tp.naps.with_options(enable_cache=False, stack=sys.argv[2])(seconds=120.0)
"""


def test_ctrl_c_stops_the_run_and_its_steps_with_one_line(dagster_stack: str, tmp_path: Path) -> None:
    script = tmp_path / "run.py"
    script.write_text(STOPPABLE)
    tests = str(Path(tp.__file__).parent)
    proc = subprocess.Popen(
        [sys.executable, str(script), tests, dagster_stack], stderr=subprocess.PIPE, text=True, env=dict(os.environ)
    )
    client = Client()
    deadline = time.monotonic() + 300
    while True:
        runs = client.list_runs("naps") if "naps" in {p.name for p in client.list_pipelines()} else []
        if runs and len([s for s in runs[0].steps.values() if s.status == "running"]) == 2:
            break
        assert proc.poll() is None and time.monotonic() < deadline, "the naps never both started"
        time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    last = stderr.strip().splitlines()[-1]
    assert proc.returncode == 1
    assert last.startswith("conveyor: error: run ") and "was stopped on Dagster" in last, stderr[-3000:]
    run = client.get_run(runs[0].record.id)
    assert run.status == "failed"
    # The stopped step settles its run itself (the step command does for engines' runs).
    assert {sid: s.status for sid, s in run.steps.items() if sid != "spans"} == {"nap": "stopped", "nap_2": "stopped"}
    deadline = time.monotonic() + 15
    while _step_processes(run.record.deployment_id) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _step_processes(run.record.deployment_id) == []
