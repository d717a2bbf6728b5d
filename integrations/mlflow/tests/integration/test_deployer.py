"""The mlflow model deployer: models served as managed services, and the continuous deployment example.

A real `mlflow server` tracks the runs; MLflow's scoring server serves the
models on 127.0.0.1; predictions are real HTTP requests.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import sys
import time
import urllib.request
import warnings
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from mlflow_test_support import cli, cli_fails

from conveyor.exceptions import ConveyorError
from conveyor_testing.strategies import hostile_text

pytestmark = [pytest.mark.integration, pytest.mark.mlflow]

EXAMPLE = Path(__file__).resolve().parents[4] / "examples" / "continuous_deployment"
FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def _predict(url: str, rows: list[list[float]]) -> list[Any]:
    body = json.dumps({"dataframe_split": {"columns": FEATURES, "data": rows}}).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - 127.0.0.1
        return list(json.loads(response.read())["predictions"])


def _service(ref: str) -> dict[str, Any]:
    return dict(json.loads(cli("service", "describe", ref, "--json")))


@pytest.fixture
def mlops_stack(repo: Path, mlflow_tracking_uri: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    cli("experiment-tracker", "register", "mlflow", "--flavor", "mlflow", "--tracking-uri", mlflow_tracking_uri)
    cli("data-validator", "register", "pandera", "--flavor", "pandera")
    cli("model-deployer", "register", "serve", "--flavor", "mlflow", "--path", str(repo / "services"))
    cli("orchestrator", "register", "proc", "--flavor", "local", "--mode", "process")
    cli(
        "stack",
        "register",
        "mlops",
        "-o",
        "proc",
        "-a",
        "default",
        "-e",
        "mlflow",
        "-d",
        "pandera",
        "-m",
        "serve",
        "--set",
    )
    monkeypatch.syspath_prepend(str(EXAMPLE))
    import pipeline as example

    yield example
    # Every service a test started is stopped with it.
    from conveyor import Client
    from conveyor.stack import Stack

    deployer = Stack.from_record(Client().get_stack("mlops")).component("model_deployer")
    for service in deployer.list_services():
        deployer.delete_service(service.id)
    sys.modules.pop("pipeline", None)


def test_continuous_deployment_serves_predictions_and_keeps_the_better_model(mlops_stack: Any) -> None:
    first = mlops_stack.continuous_deployment(c=1.0)
    assert first.status == "completed"
    service = first.steps["deploy_if_better"].output.load()
    assert service.status == "running" and service.url.startswith("http://127.0.0.1:")
    assert _predict(service.url, [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]) == [0, 2]
    accuracy = first.steps["train"].outputs["accuracy"].load()
    assert service.metadata == {"accuracy": accuracy}

    listed = cli("service", "list")
    assert "iris" in listed and "running" in listed and service.url in listed

    # A much weaker model is not deployed: the running service stays as it was.
    weaker = mlops_stack.continuous_deployment(c=0.0001)
    assert weaker.steps["train"].outputs["accuracy"].load() < accuracy
    kept = weaker.steps["deploy_if_better"].output.load()
    assert kept.id == service.id
    assert "kept iris" in weaker.steps["deploy_if_better"].logs()
    assert [s["id"] for s in json.loads(cli("service", "list", "--json"))] == [service.id]


def _log_model(tracking_uri: str) -> str:
    import mlflow
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    mlflow.set_tracking_uri(tracking_uri)
    x, y = load_iris(return_X_y=True, as_frame=True)
    x.columns = FEATURES
    with mlflow.start_run(), warnings.catch_warnings():
        # MLflow's pyfunc warns about its own type hints when first imported.
        warnings.filterwarnings("default", category=UserWarning, module="mlflow")
        info = mlflow.sklearn.log_model(LogisticRegression(max_iter=500).fit(x, y), name="model")
    return str(info.model_uri)


def _deployer() -> Any:
    from conveyor import Client
    from conveyor.stack import Stack

    return Stack.from_record(Client().get_stack()).component("model_deployer")


def test_services_are_managed_processes(mlops_stack: Any, mlflow_tracking_uri: str, repo: Path) -> None:
    model_uri = _log_model(mlflow_tracking_uri)
    deployer = _deployer()
    first = deployer.deploy(model_uri, name="churn")
    record = _service("churn")
    assert record["status"] == "running" and record["pid"] == first.pid and record["port"] == first.port
    assert Path(record["log_file"]).is_file() and "churn" not in record["log_file"]  # paths use ids, not names
    assert _predict(first.url, [[5.1, 3.5, 1.4, 0.2]]) == [0]
    assert "Uvicorn running" in cli("service", "logs", first.id) or "Application startup" in cli(
        "service", "logs", first.id
    )

    # Replacing: the new service answers before the old one is stopped.
    second = deployer.deploy(model_uri, name="churn", replace=True)
    assert second.id != first.id and second.status == "running"
    assert [s.id for s in deployer.list_services()] == [second.id]
    with pytest.raises(OSError):
        _predict(first.url, [[5.1, 3.5, 1.4, 0.2]])
    assert _predict(second.url, [[5.1, 3.5, 1.4, 0.2]]) == [0]

    # A replacement that never becomes healthy (its model cannot load) leaves the running service serving.
    broken = repo / "broken-model"
    shutil.copytree(_service("churn")["config"]["model_path"], broken)
    (broken / "model.skops").write_bytes(b"not a model")
    with pytest.raises(ConveyorError, match="service 'churn' exited while starting"):
        deployer.deploy(str(broken), name="churn", replace=True)
    assert [s.id for s in deployer.list_services()] == [second.id]
    assert _service("churn")["status"] == "running"
    assert _predict(second.url, [[6.7, 3.0, 5.2, 2.3]]) == [2]

    # A process that died shows as stopped, never as running; start brings it back as it was.
    os.killpg(second.pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while _service(second.id)["status"] != "stopped" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _service(second.id)["status"] == "stopped"
    assert "stopped" in cli("service", "list")

    # Its PID given to another process since: that process is not the service, and stopping the service spares it.
    import subprocess

    record_file = Path(_service(second.id)["log_file"]).with_name("service.json")
    other = subprocess.Popen(["sleep", "120"])
    try:
        record_file.write_text(json.dumps({**json.loads(record_file.read_text()), "pid": other.pid}))
        assert _service(second.id)["status"] == "stopped"
        cli("service", "stop", second.id)
        assert other.poll() is None
    finally:
        other.kill()
        other.wait()
    assert "Started service 'churn'" in cli("service", "start", second.id[:8])
    again = _service("churn")
    assert again["status"] == "running" and again["port"] == second.port and again["pid"] != second.pid
    assert _predict(second.url, [[6.7, 3.0, 5.2, 2.3]]) == [2]

    # Its port taken by someone else: starting it is one clear line.
    cli("service", "stop", "churn")
    assert _service("churn")["status"] == "stopped"
    with socket.socket() as blocker:
        blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a listener holds it all the same
        blocker.bind(("127.0.0.1", second.port))
        blocker.listen()
        out = cli_fails("service", "start", "churn")
        assert f"port {second.port} on 127.0.0.1 is in use" in out and out.count("\n") == 1
        with pytest.raises(ConveyorError, match=f"port {second.port} on 127.0.0.1 is in use"):
            deployer.deploy(model_uri, name="other", port=second.port)
    assert [s.name for s in deployer.list_services()] == ["churn"]

    cli("service", "delete", "churn")
    assert "No services." in cli("service", "list")
    assert not any((repo / "services").iterdir())


def test_a_model_not_in_mlflow_format_is_refused_naming_the_format(mlops_stack: Any, repo: Path) -> None:
    folder = repo / "not-a-model"
    folder.mkdir()
    (folder / "model.pkl").write_bytes(b"not a model")
    with pytest.raises(
        ConveyorError, match="is not an MLflow model: the mlflow model deployer serves the MLflow model format"
    ):
        _deployer().deploy(str(folder), name="bad")
    assert "No services." in cli("service", "list")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=hostile_text())
def test_hostile_service_names_are_refused_before_anything_is_written(mlops_stack: Any, repo: Path, name: str) -> None:
    assume(re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", name) is None)
    with pytest.raises(ConveyorError, match="service name") as err:
        _deployer().deploy(str(repo), name=name)
    assert "\n" not in err.value.message.replace(name, "")
    assert not (repo / "services").exists() or not any((repo / "services").iterdir())


def test_unknown_services_are_one_line(mlops_stack: Any) -> None:
    out = cli_fails("service", "describe", "nope")
    assert "no service 'nope'" in out and out.count("\n") == 1
