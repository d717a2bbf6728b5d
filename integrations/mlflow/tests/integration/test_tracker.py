"""The mlflow experiment tracker against a real `mlflow server` on 127.0.0.1, on the local orchestrator."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest
from mlflow_test_support import cli, cli_fails, write_module

from conveyor.exceptions import StepFailedError

pytestmark = [pytest.mark.integration, pytest.mark.mlflow]

PIPE = """
import mlflow
from conveyor import get_step_context, pipeline, step

@step(experiment_tracker="mlflow")
def train(c: float) -> float:
    mlflow.log_param("C", c)
    mlflow.log_metric("accuracy", 0.93)
    return 0.93

@step(experiment_tracker="tracker")
def evaluate(accuracy: float) -> float:
    mlflow.log_metric("checked", accuracy)
    return accuracy

@step
def untracked(accuracy: float) -> bool:
    return mlflow.active_run() is None

@pipeline
def churn(c: float = 1.0) -> None:
    acc = train(c)
    evaluate(acc)
    untracked(acc)

@step(experiment_tracker="mlflow")
def guarded() -> int:
    open("body-ran", "w").close()
    return 1

@pipeline
def guarded_pipe() -> None:
    guarded()

@step(experiment_tracker="mlflow", retries=1, timeout=30)
def flaky() -> int:
    import time
    mlflow.log_param("attempt", get_step_context().attempt)
    if get_step_context().attempt == 1:
        time.sleep(120)  # the engine kills this attempt: its MLflow run is left RUNNING
    return 1

@pipeline
def flaky_pipe() -> None:
    flaky()
"""


def _stack(uri: str, mode: str) -> None:
    cli("experiment-tracker", "register", "tracker", "--flavor", "mlflow", "--tracking-uri", uri)
    cli("orchestrator", "register", "local-mode", "--flavor", "local", "--mode", mode)
    cli("stack", "register", "ml", "-o", "local-mode", "-a", "default", "-e", "tracker", "--set")


def _client(uri: str):  # type: ignore[no-untyped-def]
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri)


def _runs(uri: str, experiment: str, conveyor_run: str) -> list:  # type: ignore[type-arg]
    client = _client(uri)
    found = client.get_experiment_by_name(experiment)
    assert found is not None, f"no MLflow experiment {experiment!r}"
    return client.search_runs([found.experiment_id], filter_string=f"tags.`conveyor.run_id` = '{conveyor_run}'")


@pytest.mark.parametrize("mode", ["thread", "process"])
def test_each_step_run_is_a_nested_mlflow_run_under_the_pipeline_run(
    repo: Path, mlflow_tracking_uri: str, mode: str
) -> None:
    write_module(repo, "churn_pipe", PIPE)
    _stack(mlflow_tracking_uri, mode)
    import churn_pipe

    run = churn_pipe.churn(c=0.5)
    assert run.status == "completed"
    assert run.steps["untracked"].output.load() is True  # no MLflow run outside the steps that name it

    runs = {r.data.tags.get("conveyor.step_id", "(pipeline)"): r for r in _runs(mlflow_tracking_uri, "churn", run.id)}
    assert set(runs) == {"(pipeline)", "train", "evaluate"}
    parent = runs["(pipeline)"]
    assert parent.info.status == "FINISHED"
    assert parent.info.run_name == run.name
    train = runs["train"]
    assert train.info.status == "FINISHED"
    assert train.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert train.data.params == {"C": "0.5"}
    assert train.data.metrics == {"accuracy": 0.93}
    assert train.data.tags["conveyor.run_name"] == run.name
    assert train.data.tags["conveyor.code_hash"] == run.steps["train"].record.code_hash
    assert runs["evaluate"].data.metrics == {"checked": 0.93}
    assert runs["evaluate"].data.tags["mlflow.parentRunId"] == parent.info.run_id

    described = cli("run", "describe", run.name)
    url = f"{mlflow_tracking_uri}/#/experiments/{train.info.experiment_id}/runs/{train.info.run_id}"
    assert url in described
    assert "train: mlflow" in described

    again = churn_pipe.churn.with_options(enable_cache=False)(c=2.0)
    again_runs = _runs(mlflow_tracking_uri, "churn", again.id)
    assert len(again_runs) == 3  # a new parent and new step runs for a new pipeline run
    assert {r.info.experiment_id for r in again_runs} == {train.info.experiment_id}


def test_a_local_store_needs_no_server(repo: Path) -> None:
    uri = f"sqlite:///{repo / 'mlflow.db'}"
    write_module(repo, "churn_pipe", PIPE)
    _stack(uri, "process")
    import churn_pipe

    run = churn_pipe.churn(c=0.25)
    assert run.status == "completed"
    runs = {r.data.tags.get("conveyor.step_id", "(pipeline)"): r for r in _runs(uri, "churn", run.id)}
    assert set(runs) == {"(pipeline)", "train", "evaluate"}
    assert runs["train"].data.params == {"C": "0.25"}
    assert runs["train"].data.tags["mlflow.parentRunId"] == runs["(pipeline)"].info.run_id
    assert f"run {runs['train'].info.run_id}" in cli("run", "describe", run.name)


def test_an_unreachable_server_fails_the_step_in_one_line_before_its_body(repo: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens once the socket closes
    write_module(repo, "churn_pipe", PIPE)
    _stack(f"http://127.0.0.1:{port}", "thread")
    import churn_pipe

    with pytest.raises(StepFailedError) as err:
        churn_pipe.guarded_pipe()
    message = str(err.value)
    assert f"experiment-tracker 'tracker': MLflow server http://127.0.0.1:{port} is unreachable" in message
    assert "\n" not in message
    assert not (repo / "body-ran").exists()
    assert "failed" in cli("pipeline", "runs", "guarded_pipe")


def test_a_retried_step_leaves_no_running_mlflow_run(repo: Path, mlflow_tracking_uri: str) -> None:
    write_module(repo, "churn_pipe", PIPE)
    _stack(mlflow_tracking_uri, "process")
    import churn_pipe

    run = churn_pipe.flaky_pipe()
    assert run.status == "completed"
    runs = [r for r in _runs(mlflow_tracking_uri, "flaky_pipe", run.id) if "conveyor.step_id" in r.data.tags]
    by_attempt = {r.data.tags["conveyor.attempt"]: r.info.status for r in runs}
    assert by_attempt == {"1": "FAILED", "2": "FINISHED"}


def test_a_credential_in_the_tracking_uri_is_refused(repo: Path) -> None:
    out = cli_fails(
        "experiment-tracker", "register", "t", "--flavor", "mlflow", "--tracking-uri", "http://bob:hunter2@127.0.0.1:1"
    )
    assert "holds a credential" in out
    assert "hunter2" not in cli("experiment-tracker", "list")


def test_credentials_come_from_secrets_and_a_wrong_one_is_one_line(repo: Path, mlflow_auth_server: Any) -> None:
    server = mlflow_auth_server
    assert server.username and server.password
    cli("secret", "create", "mlflow", f"--user={server.username}", f"--password={server.password}")
    cli(
        "experiment-tracker",
        "register",
        "tracker",
        "--flavor",
        "mlflow",
        "--tracking-uri",
        server.url,
        "--username",
        "{{mlflow.user}}",
        "--password",
        "{{mlflow.password}}",
    )
    cli("stack", "register", "ml", "-o", "default", "-a", "default", "-e", "tracker", "--set")
    write_module(repo, "churn_pipe", PIPE)
    import churn_pipe

    run = churn_pipe.churn(c=3.0)
    assert run.status == "completed"
    import os

    os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"] = server.username, server.password
    try:
        train = next(r for r in _runs(server.url, "churn", run.id) if r.data.tags.get("conveyor.step_id") == "train")
    finally:
        del os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"]
    assert train.data.params == {"C": "3.0"}
    described = cli("run", "describe", run.name) + cli("experiment-tracker", "describe", "tracker")
    assert server.password not in described
    assert server.password not in run.steps["train"].logs()

    cli("secret", "update", "mlflow", "--password=wrong-password")
    with pytest.raises(StepFailedError) as err:
        churn_pipe.guarded_pipe()
    message = str(err.value)
    assert f"experiment-tracker 'tracker': MLflow server {server.url} refused the credential (HTTP 401)" in message
    assert "\n" not in message and "wrong-password" not in message
    assert not (repo / "body-ran").exists()
