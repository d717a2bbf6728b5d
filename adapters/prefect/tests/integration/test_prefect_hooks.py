"""Hooks on real Prefect flow runs: failure hooks run once, from the step or from the flow driver."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from conftest import PrefectServer, register_prefect_stack

from conveyor import Client
from conveyor.alerters import alert_on_failure
from conveyor.exceptions import StepFailedError
from conveyor_testing.conformance import case, load_pipeline
from conveyor_testing.http_sink import HttpSink

pytestmark = [pytest.mark.integration, pytest.mark.prefect]


def _alerting_stack(server: PrefectServer, sink: HttpSink, step_mode: str) -> None:
    register_prefect_stack(api_url=server.url, step_mode=step_mode)
    Client().register_component("alerter", "sink", "webhook", {"url": f"{sink.url}/hook"})
    Client().update_stack("on_prefect", {"alerter": "sink"})


@pytest.mark.parametrize("step_mode", ["in_process", "subprocess"])
def test_a_failing_step_runs_the_pipeline_failure_hook_once(
    repo: Path, prefect_server: PrefectServer, http_sink: HttpSink, step_mode: str
) -> None:
    _alerting_stack(prefect_server, http_sink, step_mode)
    pipe = load_pipeline(case("failing_step")).with_options(enable_cache=False, on_failure=alert_on_failure)
    with pytest.raises(StepFailedError, match="bad input 3"):
        pipe()
    body = http_sink.only_request().json()
    run = Client().get_pipeline("failing_step").last_run
    assert run.status == "failed" and run.orchestrator == "prefect"
    assert (body["run"], body["step"], body["event"]) == (run.name, None, "failure")
    assert body["error"] == "step 'explode' failed: ValueError: bad input 3"
    assert [(h.step_id, h.event, h.status) for h in run.hooks] == [(None, "failure", "completed")]


def test_a_killed_step_runs_its_failure_hooks_from_the_flow_driver(
    repo: Path, prefect_server: PrefectServer, http_sink: HttpSink
) -> None:
    """The step's process died (SIGKILL): the flow driver, which supervised it, runs its hooks once."""
    from prefect_pipelines import killed

    _alerting_stack(prefect_server, http_sink, "subprocess")
    pipe = killed.with_options(
        enable_cache=False,
        on_failure=alert_on_failure,
        steps={"die": {"on_failure": ["conveyor.alerters:alert_on_failure"]}},
    )
    with pytest.raises(StepFailedError, match="was killed"):
        pipe()
    requests = http_sink.wait_for(2)
    run = Client().get_pipeline("killed").last_run
    bodies = sorted((r.json()["step"] or "", r.json()["error"]) for r in requests)
    assert bodies == [("", run.error), ("die", "its process was killed")]
    assert sorted((h.step_id or "", h.status) for h in run.hooks) == [("", "completed"), ("die", "completed")]
    time.sleep(0.5)
    assert len(http_sink.requests) == 2
