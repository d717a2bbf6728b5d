"""Hooks on real Airflow: a failing step runs the pipeline's failure hook once, from the task that failed."""

from __future__ import annotations

from pathlib import Path

import pytest
from airflow_harness import AirflowHome, run_dag

from conveyor import Client, export_pipeline
from conveyor.alerters import alert_on_failure
from conveyor_testing.conformance import case, load_pipeline
from conveyor_testing.http_sink import HttpSink

pytestmark = [pytest.mark.integration, pytest.mark.airflow]


def test_a_failing_step_runs_the_pipeline_failure_hook_once(
    repo: Path, airflow_home: AirflowHome, step_python: str, http_sink: HttpSink
) -> None:
    client = Client()
    client.register_component("orchestrator", "af", "airflow", {"python": step_python})
    client.register_component("alerter", "sink", "webhook", {"url": f"{http_sink.url}/hook"})
    client.register_stack("on_airflow", {"orchestrator": "af", "artifact_store": "default", "alerter": "sink"})
    pipe = load_pipeline(case("failing_step")).with_options(enable_cache=False, on_failure=alert_on_failure)
    [dag_file] = export_pipeline(pipe, airflow_home.dags, stack="on_airflow")

    state, tasks = run_dag(dag_file, "failing_step")

    assert (state, tasks["explode"]) == ("failed", "failed")
    body = http_sink.only_request().json()
    run = Client().get_pipeline("failing_step").last_run
    assert run.status == "failed" and run.orchestrator == "airflow"
    assert (body["pipeline"], body["run"], body["step"], body["event"]) == ("failing_step", run.name, None, "failure")
    assert body["error"] == "step 'explode' failed: ValueError: bad input 3"
    assert [(h.step_id, h.event, h.status) for h in run.hooks] == [(None, "failure", "completed")]
