"""Hooks on real Dagster: failure hooks run once, from the op's step command or from the orchestrator's settle."""

from __future__ import annotations

import time
from pathlib import Path

import dagster_test_pipelines as tp
import pytest

from conveyor import Client
from conveyor.alerters import alert_on_failure
from conveyor.exceptions import StepFailedError
from conveyor_testing.conformance import case, load_pipeline
from conveyor_testing.http_sink import HttpSink

pytestmark = [pytest.mark.integration, pytest.mark.dagster]


@pytest.fixture
def alerting(dagster_stack: str, http_sink: HttpSink) -> str:
    """The Dagster stack with a webhook alerter that posts to the sink."""
    Client().register_component("alerter", "sink", "webhook", {"url": f"{http_sink.url}/hook"})
    Client().update_stack(dagster_stack, {"alerter": "sink"})
    return dagster_stack


def test_a_failing_step_runs_the_pipeline_failure_hook_once(alerting: str, http_sink: HttpSink) -> None:
    pipe = load_pipeline(case("failing_step")).with_options(
        enable_cache=False, stack=alerting, on_failure=alert_on_failure
    )
    with pytest.raises(StepFailedError, match="bad input 3"):
        pipe()
    body = http_sink.only_request().json()
    run = Client().get_pipeline("failing_step").last_run
    assert run.status == "failed" and run.orchestrator == "dagster"
    assert (body["pipeline"], body["run"], body["step"], body["event"]) == ("failing_step", run.name, None, "failure")
    assert body["error"] == "step 'explode' failed: ValueError: bad input 3"
    assert [(h.step_id, h.event, h.status) for h in run.hooks] == [(None, "failure", "completed")]


def test_a_killed_op_runs_its_failure_hooks_once_from_the_orchestrator(alerting: str, http_sink: HttpSink) -> None:
    """The op's process died (SIGKILL): the step could not run its hook; the run's settle does, once."""
    pipe = tp.killed.with_options(
        enable_cache=False,
        stack=alerting,
        on_failure=alert_on_failure,
        steps={"doomed": {"on_failure": ["conveyor.alerters:alert_on_failure"]}},
    )
    with pytest.raises(StepFailedError):
        pipe()
    requests = http_sink.wait_for(2)
    run = Client().get_pipeline("killed").last_run
    bodies = sorted((r.json()["step"] or "", r.json()["error"]) for r in requests)
    assert bodies == [("", run.error), ("doomed", run.steps["doomed"].record.error)]
    assert "killed" in bodies[1][1]
    assert sorted((h.step_id or "", h.status) for h in run.hooks) == [("", "completed"), ("doomed", "completed")]
    time.sleep(0.5)
    assert len(http_sink.requests) == 2


def test_a_step_that_succeeds_on_its_retry_runs_no_failure_hook(
    alerting: str, http_sink: HttpSink, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONVEYOR_ATTEMPTS_FILE", str(tmp_path / "attempts"))
    pipe = tp.flaky.with_options(
        enable_cache=False,
        stack=alerting,
        on_failure=alert_on_failure,
        steps={"wobble": {"on_failure": ["conveyor.alerters:alert_on_failure"]}},
    )
    run = pipe()
    assert run.status == "completed" and run.steps["wobble"].record.attempts == 2
    time.sleep(0.5)
    assert http_sink.requests == []
    assert run.hooks == []
