"""Hooks on real Airflow: a failing step runs the pipeline's failure hook once, from the task that failed; a step
killed outright has its run settled, and its hooks run, by the DAG's teardown task."""

from __future__ import annotations

import time
from pathlib import Path

import airflow_test_pipelines as tp
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


def test_a_killed_step_in_a_dag_run_airflow_started_is_settled_by_the_teardown_task(
    repo: Path, airflow_home: AirflowHome, step_python: str, http_sink: HttpSink
) -> None:
    """The step's process dies without a word (SIGKILL) in a DAG run nobody in conveyor waits on: the teardown
    task fails the step and the run, and the step's failure hook and the pipeline's each fire once."""
    client = Client()
    client.register_component("orchestrator", "af", "airflow", {"python": step_python})
    client.register_component("alerter", "sink", "webhook", {"url": f"{http_sink.url}/hook"})
    client.register_stack("on_airflow", {"orchestrator": "af", "artifact_store": "default", "alerter": "sink"})
    [dag_file] = export_pipeline(tp.killed_pipe, airflow_home.dags, stack="on_airflow")

    state, tasks = run_dag(dag_file, "killed")

    # The teardown task succeeds and leaves the DAG run's state to the step tasks.
    assert (state, tasks) == (
        "failed",
        {"killed": "failed", "after_killed": "upstream_failed", "conveyor-finish-run": "success"},
    )
    posts = http_sink.wait_for(2, timeout=10)
    time.sleep(1.0)  # a second supervisor would post now
    assert len(http_sink.requests) == 2, [r.text for r in http_sink.requests]
    run = Client().get_pipeline("killed").last_run
    assert (run.status, run.orchestrator) == ("failed", "airflow")
    assert (run.steps["killed"].status, run.steps["after_killed"].status) == ("failed", "skipped")
    bodies = sorted((p.json()["step"] or "", p.json()["event"], p.json()["run"], p.json()["error"]) for p in posts)
    assert bodies == [
        ("", "failure", run.name, "the engine ended the run before step 'killed' finished"),
        ("killed", "failure", run.name, "its engine ended the run while it ran (its process was killed)"),
    ]
    assert sorted((h.step_id or "", h.event, h.status) for h in run.hooks) == [
        ("", "failure", "completed"),
        ("killed", "failure", "completed"),
    ]
