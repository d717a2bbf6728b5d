"""The trigger path against a running Airflow (api-server, scheduler, dag-processor on 127.0.0.1).

Running a pipeline writes its DAG, waits for the dag-processor to load it,
triggers it through the REST API with a JWT from the simple auth manager,
and mirrors the DAG run's end into the conveyor run.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import airflow_test_pipelines as tp
import httpx
import pytest
from airflow_harness import AirflowServers

from conveyor import Client, Schedule
from conveyor.exceptions import ConfigError, StackError, StepFailedError
from conveyor_testing.conformance import artifact_hashes, case, check_run, load_pipeline, run_case
from conveyor_testing.http_sink import HttpSink

pytestmark = [pytest.mark.integration, pytest.mark.airflow]


def register(servers: AirflowServers, python: str, *, password: str | None = None, **config: Any) -> None:
    from conveyor.secrets import SecretStore

    client = Client()
    SecretStore(client.store).create(
        "airflow_api", {"username": servers.username, "password": password or servers.password}
    )
    client.register_component(
        "orchestrator",
        "af",
        "airflow",
        {
            "dags_folder": str(servers.dags),
            "python": python,
            "api_url": servers.url,
            "api_username": "{{airflow_api.username}}",
            "api_password": "{{airflow_api.password}}",
            "poll_interval": 1,
            "parse_timeout": 180,
            "wait_timeout": 300,
            **config,
        },
    )
    client.register_stack("on_airflow", {"orchestrator": "af", "artifact_store": "default"})


def api_get(servers: AirflowServers, path: str) -> Any:
    token = httpx.post(
        f"{servers.url}/auth/token", json={"username": servers.username, "password": servers.password}, timeout=30
    ).json()["access_token"]
    response = httpx.get(f"{servers.url}{path}", headers={"Authorization": f"Bearer {token}"}, timeout=30)
    response.raise_for_status()
    return response.json()


def test_running_a_pipeline_triggers_its_dag_and_waits_for_it(
    repo: Path, airflow_servers: AirflowServers, step_python: str
) -> None:
    c = case("quickstart")
    register(airflow_servers, step_python)
    local = run_case(c, stack="default")
    run = load_pipeline(c).with_options(enable_cache=False, stack="on_airflow")(**c.params)
    assert run is not None, airflow_servers.tail()
    check_run(c, run)
    assert artifact_hashes(run) == artifact_hashes(local)
    assert run.orchestrator == "airflow" and run.orchestrator_run_id.startswith("conveyor__")
    dag_run = api_get(airflow_servers, f"/api/v2/dags/quickstart/dagRuns/{run.orchestrator_run_id}")
    assert dag_run["state"] == "success"
    assert [r.id for r in Client().get_pipeline("quickstart").runs if r.orchestrator == "airflow"] == [run.id]


def test_a_failing_run_fails_the_call_and_its_conveyor_run(
    repo: Path, airflow_servers: AirflowServers, step_python: str
) -> None:
    c = case("failing_step")
    register(airflow_servers, step_python)
    with pytest.raises(StepFailedError) as info:
        load_pipeline(c).with_options(enable_cache=False, stack="on_airflow")(**c.params)
    assert "failed on Airflow" in str(info.value) and "explode" in str(info.value)
    run = Client().get_pipeline("failing_step").last_run
    check_run(c, run)
    dag_run = api_get(airflow_servers, f"/api/v2/dags/failing_step/dagRuns/{run.orchestrator_run_id}")
    assert dag_run["state"] == "failed"


def test_refused_credentials_are_one_line_and_write_nothing(
    repo: Path, airflow_servers: AirflowServers, step_python: str
) -> None:
    register(airflow_servers, step_python, password="not-the-password")
    before = sorted(p.name for p in airflow_servers.dags.iterdir())
    with pytest.raises(StackError) as info:
        load_pipeline(case("rich_outputs")).with_options(stack="on_airflow")()
    assert str(info.value).startswith(f"Airflow at {airflow_servers.url} refused the credentials of orchestrator 'af'")
    assert "\n" not in str(info.value)
    assert sorted(p.name for p in airflow_servers.dags.iterdir()) == before


def test_a_pool_airflow_lacks_is_refused_before_writing(
    repo: Path, airflow_servers: AirflowServers, step_python: str
) -> None:
    register(airflow_servers, step_python)
    with pytest.raises(ConfigError, match="has no pool 'crunch'"):
        tp.golden.with_options(stack="on_airflow")()
    assert not (airflow_servers.dags / "golden.py").exists()


def test_a_scheduled_pipeline_is_deployed_unpaused_not_run(
    repo: Path, airflow_servers: AirflowServers, step_python: str
) -> None:
    register(airflow_servers, step_python)
    schedule = Schedule(cron="0 3 1 1 *", start_date=datetime(2100, 1, 1, tzinfo=timezone.utc))
    pipe = load_pipeline(case("fan_out")).with_options(
        stack="on_airflow", schedule=schedule, settings={"airflow": {"dag_id": "fan_out_yearly"}}
    )
    deployed = pipe(width=4)
    # A script that reads what it got learns where the DAG is and how to start a run now.
    assert deployed.status == "deployed" and deployed.engine == "airflow"
    assert deployed.trigger == "airflow dags trigger fan_out_yearly"
    assert str(airflow_servers.dags / "fan_out_yearly.py") in deployed.where
    assert deployed.schedule == schedule
    details = api_get(airflow_servers, "/api/v2/dags/fan_out_yearly/details")
    assert details["is_paused"] is False
    assert "0 3 1 1 *" in details["timetable_summary"]
    assert Client().get_pipeline("fan_out").runs == []


def api_post(servers: AirflowServers, path: str, body: dict[str, Any]) -> Any:
    token = httpx.post(
        f"{servers.url}/auth/token", json={"username": servers.username, "password": servers.password}, timeout=30
    ).json()["access_token"]
    response = httpx.post(f"{servers.url}{path}", json=body, headers={"Authorization": f"Bearer {token}"}, timeout=30)
    response.raise_for_status()
    return response.json()


def trigger_and_wait(servers: AirflowServers, dag_id: str, run_id: str, conf: dict[str, Any]) -> str:
    """What `airflow dags trigger --conf` and the UI's "trigger with config" do; returns the DAG run's end state."""
    import time

    api_post(servers, f"/api/v2/dags/{dag_id}/dagRuns", {"dag_run_id": run_id, "logical_date": None, "conf": conf})
    for _ in range(300):
        state = api_get(servers, f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")["state"]
        if state in ("success", "failed"):
            return str(state)
        time.sleep(1)
    raise AssertionError(f"DAG run {run_id} did not end: {servers.tail()}")


def test_a_dag_run_triggered_with_a_config_overrides_the_pipeline_parameters(
    repo: Path, airflow_servers: AirflowServers, step_python: str
) -> None:
    c = case("quickstart")
    register(airflow_servers, step_python)
    first = load_pipeline(c).with_options(stack="on_airflow")(**c.params)
    assert first.status == "completed", airflow_servers.tail()
    details = api_get(airflow_servers, "/api/v2/dags/quickstart/details")
    assert {name: p["value"] for name, p in details["params"].items()} == first.parameters

    assert trigger_and_wait(airflow_servers, "quickstart", "with_conf", {"n": 7}) == "success", airflow_servers.tail()
    [run] = [r for r in Client().get_pipeline("quickstart").runs if r.orchestrator_run_id == "with_conf"]
    assert run.status == "completed" and run.parameters == {"n": 7}
    assert run.steps["load_data"].output.load() == list(range(7))

    # The step command checks the config: a name the pipeline does not have fails the DAG run.
    assert trigger_and_wait(airflow_servers, "quickstart", "bad_conf", {"nn": 7}) == "failed"


def test_a_killed_task_runs_its_failure_hooks_once_when_the_run_settles(
    repo: Path, airflow_servers: AirflowServers, step_python: str, http_sink: HttpSink
) -> None:
    """The step's process died without a word (SIGKILL): the DAG's teardown task settles the run and the
    orchestrator that waited finds it settled; the step's failure hook and the pipeline's fire once each."""
    register(airflow_servers, step_python)
    client = Client()
    client.register_component("alerter", "sink", "webhook", {"url": f"{http_sink.url}/hook"})
    client.update_stack("on_airflow", {"alerter": "sink"})
    with pytest.raises(StepFailedError, match="failed on Airflow"):
        tp.killed_pipe.with_options(stack="on_airflow")()
    posts = http_sink.wait_for(2, timeout=10)
    time.sleep(0.5)  # a second supervisor would post now
    assert len(http_sink.requests) == 2, [r.text for r in http_sink.requests]
    run = Client().get_pipeline("killed").last_run
    bodies = sorted((p.json()["step"] or "", p.json()["error"]) for p in posts)
    assert bodies == [
        ("", "the engine ended the run before step 'killed' finished"),
        ("killed", "its engine ended the run while it ran (its process was killed)"),
    ]
    assert (run.status, run.steps["killed"].status) == ("failed", "failed")
    assert sorted((h.step_id or "", h.status) for h in run.hooks) == [("", "completed"), ("killed", "completed")]
