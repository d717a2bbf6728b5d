"""The mlflow experiment tracker on Airflow: steps of an exported DAG log to a real `mlflow server` on 127.0.0.1.

The DAG runs with ``dag.test()``; its tasks run the step command in this
interpreter (python mode), which has conveyor-mlflow, as an Airflow worker
with the pipeline's dependencies would.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from airflow_harness import AirflowHome, run_dag

from conveyor import Client, export_pipeline

pytestmark = [pytest.mark.integration, pytest.mark.airflow, pytest.mark.mlflow]

PIPE = """
import os
import signal

import mlflow
from conveyor import get_step_context, pipeline, step


@step(experiment_tracker="mlflow")
def train(c: float) -> float:
    mlflow.log_param("C", c)
    mlflow.log_metric("accuracy", 0.93)
    return 0.93


@step(experiment_tracker="mlflow", retries=1)
def evaluate(accuracy: float) -> float:
    mlflow.log_metric("checked", accuracy)
    if get_step_context().attempt == 1:
        # The first attempt's process dies the way an out-of-memory kill ends it: nothing ends its MLflow run.
        os.kill(os.getpid(), signal.SIGKILL)
    return accuracy


@pipeline
def churn_af(c: float = 1.0) -> None:
    evaluate(train(c))
"""


def _runs(uri: str, experiment: str, conveyor_run: str) -> list[Any]:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    found = client.get_experiment_by_name(experiment)
    assert found is not None, f"no MLflow experiment {experiment!r}"
    runs: list[Any] = client.search_runs(
        [found.experiment_id], filter_string=f"tags.`conveyor.run_id` = '{conveyor_run}'"
    )
    return runs


def test_steps_on_airflow_log_to_nested_mlflow_runs_and_a_killed_attempt_ends_failed(
    repo: Path, airflow_home: AirflowHome, mlflow_tracking_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")  # the step processes inherit it
    (repo / "churn_af_pipe.py").write_text(PIPE)
    import churn_af_pipe

    client = Client()
    client.register_component("experiment_tracker", "tracker", "mlflow", {"tracking_uri": mlflow_tracking_uri})
    client.register_component("orchestrator", "af", "airflow", {"python": sys.executable})
    client.register_stack(
        "on_airflow", {"orchestrator": "af", "artifact_store": "default", "experiment_tracker": "tracker"}
    )
    [dag_file] = export_pipeline(
        churn_af_pipe.churn_af.with_options(enable_cache=False),
        airflow_home.dags,
        stack="on_airflow",
        parameters={"c": 0.5},
    )
    state, tasks = run_dag(dag_file, "churn_af")
    assert (state, tasks) == ("success", {"train": "success", "evaluate": "success", "conveyor-finish-run": "success"})

    run = client.get_pipeline("churn_af").last_run
    assert run.status == "completed" and run.orchestrator == "airflow"
    assert run.steps["evaluate"].record.attempts == 2

    runs = _runs(mlflow_tracking_uri, "churn_af", run.id)
    [parent] = [r for r in runs if "conveyor.step_id" not in r.data.tags]
    assert parent.info.run_name == run.name
    assert parent.info.status == "FINISHED"
    steps = {(r.data.tags["conveyor.step_id"], r.data.tags["conveyor.attempt"]): r for r in runs if r is not parent}
    assert {key: r.info.status for key, r in steps.items()} == {
        ("train", "1"): "FINISHED",
        ("evaluate", "1"): "FAILED",  # the killed attempt's run, ended by the retry
        ("evaluate", "2"): "FINISHED",
    }
    train = steps["train", "1"]
    assert train.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert steps["evaluate", "2"].data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert train.data.tags["conveyor.run_name"] == run.name
    assert train.data.tags["conveyor.code_hash"] == run.steps["train"].record.code_hash
    assert train.data.params == {"C": "0.5"}
    assert train.data.metrics == {"accuracy": 0.93}
    assert steps["evaluate", "2"].data.metrics == {"checked": 0.93}

    from click.testing import CliRunner

    from conveyor.cli import cli

    described = CliRunner().invoke(cli, ["run", "describe", run.name], catch_exceptions=False)
    assert described.exit_code == 0, described.output

    def url(r: Any) -> str:
        return f"{mlflow_tracking_uri}/#/experiments/{r.info.experiment_id}/runs/{r.info.run_id}"

    lines = described.output.splitlines()
    assert any("train: mlflow" in line and url(train) in line for line in lines), described.output
    # A retried step links to the run of its last attempt.
    assert any("evaluate: mlflow" in line and url(steps["evaluate", "2"]) in line for line in lines), described.output
    assert url(steps["evaluate", "1"]) not in described.output
