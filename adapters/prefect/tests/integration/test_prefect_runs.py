"""Pipelines run as real Prefect flow runs against a real Prefect server."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from prefect_test_support import PrefectServer, register_prefect_stack

from conveyor import Client
from conveyor.exceptions import RunStoppedError, StepFailedError
from conveyor_testing.conformance import OrchestratorContract

pytestmark = [pytest.mark.integration, pytest.mark.prefect]


def read_flow_run(url: str, flow_run_id: str) -> Any:
    from prefect.client.orchestration import get_client

    from conveyor_prefect._orchestrator import prefect_api

    with prefect_api(url), get_client(sync_client=True) as client:
        return client.read_flow_run(flow_run_id)


def task_run_names(url: str, flow_run_id: str) -> list[str]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from conveyor_prefect._orchestrator import prefect_api

    with prefect_api(url), get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    return sorted(r.name for r in runs)


class TestPrefectConformance(OrchestratorContract):
    """Every conformance case as a real Prefect flow run, its steps in the flow's process or one process each."""

    @pytest.fixture(params=["in_process", "subprocess"])
    def conformance_stack(self, request: pytest.FixtureRequest, repo: Path, prefect_server: PrefectServer) -> str:
        return register_prefect_stack(api_url=prefect_server.url, step_mode=request.param)

    def check_engine_run(self, case: Any, run: Any, reference: Any, request: pytest.FixtureRequest) -> None:
        url = request.getfixturevalue("prefect_server").url
        assert run.orchestrator == "prefect"  # the stack it recorded is checked by the contract
        flow_run = read_flow_run(url, run.orchestrator_run_id)
        assert str(flow_run.id) == run.orchestrator_run_id
        assert f"conveyor-run:{run.id}" in flow_run.tags
        assert flow_run.parameters["conveyor_run_id"] == run.id
        assert flow_run.name == run.name
        assert flow_run.state.name == ("Failed" if case.fails else "Completed")
        ran = [sid for sid, s in run.steps.items() if s.status != "skipped"]
        assert [n for n in task_run_names(url, run.orchestrator_run_id) if n in ran] == sorted(ran)

    def steps_run_in_the_driver(self, request: pytest.FixtureRequest) -> bool:
        # in_process: the flow runs in the process that called the pipeline, its steps in the flow's threads.
        return bool(request.node.callspec.params.get("conformance_stack") == "in_process")

    def server_leak_surfaces(self, run: Any, request: pytest.FixtureRequest) -> list[Any]:
        # Prefect's server keeps flow runs, their parameters and deployments in its home's database.
        return [request.getfixturevalue("repo"), request.getfixturevalue("prefect_server").home]


def test_independent_steps_run_at_the_same_time(prefect_stack: str, prefect_server: PrefectServer) -> None:
    from prefect_pipelines import nap, pipeline

    @pipeline(name="two_naps")
    def two_naps() -> None:
        nap(1, 2.0)
        nap(2, 2.0)

    run = two_naps.with_options(enable_cache=False)()
    assert run.status == "completed"
    first, second = run.steps["nap"], run.steps["nap_2"]
    assert first.record.started < second.record.ended and second.record.started < first.record.ended


def test_step_timeout_fails_the_run(repo: Path, prefect_server: PrefectServer) -> None:
    from prefect_pipelines import slow

    register_prefect_stack(api_url=prefect_server.url)
    started = time.perf_counter()
    with pytest.raises(StepFailedError, match="timed out"):
        slow.with_options(enable_cache=False, steps={"nap": {"timeout": 4}})(seconds=60)
    assert time.perf_counter() - started < 20
    run = Client().get_pipeline("slow").last_run
    assert run.status == "failed"
    assert {sid: s.status for sid, s in run.steps.items()} == {
        "first": "completed",
        "nap": "failed",
        "after_nap": "skipped",
    }
    assert "timed out after 4 s" in run.steps["nap"].record.error
    assert read_flow_run(prefect_server.url, run.orchestrator_run_id).state.name == "Failed"


def test_killed_step_process_fails_the_run(repo: Path, prefect_server: PrefectServer) -> None:
    from prefect_pipelines import killed

    register_prefect_stack(api_url=prefect_server.url, step_mode="subprocess")
    with pytest.raises(StepFailedError, match="was killed"):
        killed.with_options(enable_cache=False)()
    run = Client().get_pipeline("killed").last_run
    assert run.status == "failed"
    assert {sid: s.status for sid, s in run.steps.items()} == {
        "first": "completed",
        "die": "failed",
        "after_nap": "skipped",
    }


@pytest.mark.parametrize("step_mode", ["subprocess", "in_process"])
def test_cancelling_the_flow_run_in_prefect_stops_the_conveyor_run(
    step_mode: str, repo: Path, prefect_server: PrefectServer
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.states import Cancelling
    from prefect_pipelines import slow

    from conveyor_prefect._orchestrator import prefect_api

    register_prefect_stack(api_url=prefect_server.url, step_mode=step_mode, cancel_poll_interval=0.5)
    seconds = 6.0 if step_mode == "in_process" else 60.0  # a thread cannot be stopped mid-step
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            slow.with_options(enable_cache=False)(seconds=seconds)
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    started = time.monotonic()
    thread.start()
    client = Client()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        runs = client.store.list_runs()
        if (
            runs
            and runs[0].orchestrator_run_id
            and any(r.step_id == "nap" and r.status == "running" for r in client.store.list_step_runs(runs[0].id))
        ):
            break
        time.sleep(0.2)
    else:
        pytest.fail("the nap step never started")
    flow_run_id = runs[0].orchestrator_run_id
    with prefect_api(prefect_server.url), get_client(sync_client=True) as prefect:
        prefect.set_flow_run_state(flow_run_id, Cancelling(), force=True)
    thread.join(60)
    assert not thread.is_alive()
    assert isinstance(outcome[0], RunStoppedError), outcome
    if step_mode == "subprocess":
        assert time.monotonic() - started < 30
    run = client.get_run(runs[0].id)
    assert run.status == "stopped"
    assert "cancelled in Prefect" in run.error
    assert "after_nap" not in run.steps or run.steps["after_nap"].status != "completed"
    if step_mode == "subprocess":
        assert run.steps["nap"].status == "stopped"
    assert read_flow_run(prefect_server.url, flow_run_id).state.name == "Cancelled"
