"""Submitting with the real ``kfp.Client`` to a recording KFP API on 127.0.0.1.

What reaches the server must be the spec ``conveyor pipeline export`` writes;
refusals and unreachable hosts are one-line errors; a failed submission is
never reported as a success and leaves no conveyor run behind.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kfp_api_server import KfpApiServer, serve
from kfp_test_support import launch_quickstart as _launch
from kfp_test_support import register_pushed_stack as _stack

from conveyor.exceptions import RunStoppedError, StackError, StepFailedError
from conveyor.ir import Schedule

pytestmark = [pytest.mark.integration, pytest.mark.kubeflow]


@pytest.fixture
def kfp_api() -> Iterator[KfpApiServer]:
    yield from serve()


def _runs() -> list[Any]:
    """Every conveyor run of quickstart in this repository."""
    from conveyor import Client
    from conveyor.exceptions import NotFoundError

    try:
        return Client().get_pipeline("quickstart").runs
    except NotFoundError:
        return []


def _submitted_spec(body: dict[str, Any]) -> Any:
    return body["pipeline_spec"]


def _exported_spec(repo: Path) -> Any:
    [path] = _launch("export", repo / "exported")
    docs = list(yaml.safe_load_all(path.read_text()))
    return docs[0] if len(docs) == 1 else {"pipeline_spec": docs[0], "platform_spec": docs[1]}


def test_run_submits_the_exported_spec_and_mirrors_success(repo: Path, kfp_api: KfpApiServer) -> None:
    from conveyor import Client

    _stack(kfp_api.url, experiment="demos")
    run_id = _launch("run")

    [create] = kfp_api.calls("POST", "/runs")
    assert _submitted_spec(create.body) == _exported_spec(repo)
    assert create.body["runtime_config"].get("parameters") in (None, {})  # the spec's defaults are the values
    [experiment] = kfp_api.experiments.values()
    assert experiment["display_name"] == "demos" and create.body["experiment_id"] == experiment["experiment_id"]
    [kfp_run_id] = kfp_api.runs
    run = Client().get_run(run_id)
    assert run.status == "completed"
    assert run.orchestrator == "kubeflow" and run.orchestrator_run_id == kfp_run_id
    assert run.record.run_key == f"kfp:{kfp_run_id}"
    assert create.body["display_name"] == run.name


def test_failed_kfp_run_fails_the_conveyor_run(repo: Path, kfp_api: KfpApiServer) -> None:
    from conveyor import Client

    kfp_api.states = ["RUNNING", "FAILED"]
    _stack(kfp_api.url)
    with pytest.raises(StepFailedError, match="failed on KFP: KFP run .* failed: task train failed"):
        _launch("run")
    assert Client().get_pipeline("quickstart").last_run.status == "failed"


def test_cancelled_kfp_run_stops_the_conveyor_run(repo: Path, kfp_api: KfpApiServer) -> None:
    from conveyor import Client

    kfp_api.states = ["CANCELING", "CANCELED"]
    _stack(kfp_api.url)
    with pytest.raises(RunStoppedError, match="was cancelled in KFP"):
        _launch("run")
    assert Client().get_pipeline("quickstart").last_run.status == "stopped"


def test_without_waiting_the_run_is_left_running(repo: Path, kfp_api: KfpApiServer) -> None:
    from conveyor import Client

    _stack(kfp_api.url, wait=False)
    run_id = _launch("run")
    assert Client().get_run(run_id).status == "running"
    assert kfp_api.calls("GET", f"/runs/{next(iter(kfp_api.runs))}") == []


def test_schedule_creates_a_recurring_run_of_the_exported_spec(repo: Path, kfp_api: KfpApiServer) -> None:

    _stack(kfp_api.url)
    schedule = Schedule(cron="*/5 * * * *")
    deployed = _launch("run", schedule=schedule)
    assert deployed.status == "deployed" and deployed.schedule == schedule
    assert deployed.where.startswith("KFP recurring run ") and kfp_api.url in deployed.where
    [create] = kfp_api.calls("POST", "/recurringruns")
    body = create.body
    assert body["trigger"] == {"cron_schedule": {"cron": "0 */5 * * * *"}}
    assert body["mode"] == "ENABLE" and body["no_catchup"] is True
    [path] = _launch("export", repo / "exported", schedule=schedule)
    assert _submitted_spec(body) == yaml.safe_load(path.read_text())
    assert kfp_api.calls("POST", "/runs") == []
    assert _runs() == []


def test_token_comes_from_a_secret_and_is_sent_as_bearer(repo: Path, kfp_api: KfpApiServer) -> None:
    from conveyor import Client

    kfp_api.token = "s3cr3t-token"
    Client().create_secret("kfp", {"token": "s3cr3t-token"})
    _stack(kfp_api.url, token="{{kfp.token}}")
    _launch("run")
    assert kfp_api.requests and all(r.headers.get("authorization") == "Bearer s3cr3t-token" for r in kfp_api.requests)
    [path] = _launch("export", repo / "exported")
    assert "s3cr3t-token" not in path.read_text()


def test_refused_credentials_are_one_line_and_submit_nothing(repo: Path, kfp_api: KfpApiServer) -> None:
    from conveyor import Client

    kfp_api.token = "right"
    Client().create_secret("kfp", {"token": "wrong"})
    _stack(kfp_api.url, token="{{kfp.token}}")
    with pytest.raises(StackError, match=r"KFP at http://127\.0\.0\.1:\d+ refused the credentials \(HTTP 401") as info:
        _launch("run")
    assert "\n" not in str(info.value) and "secret that the token" in str(info.value)
    assert kfp_api.calls("POST", "/runs") == []
    assert _runs() == []


def test_unreachable_host_is_one_line_and_quick(repo: Path) -> None:

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    _stack(f"http://127.0.0.1:{port}")
    started = time.monotonic()
    with pytest.raises(StackError, match=rf"cannot reach KFP at http://127\.0\.0\.1:{port}: .*refused") as info:
        _launch("run")
    assert time.monotonic() - started < 10
    assert "\n" not in str(info.value)
    assert _runs() == []


def test_rejected_submission_is_an_error_not_a_run(repo: Path, kfp_api: KfpApiServer) -> None:

    kfp_api.fail_create = 500
    _stack(kfp_api.url)
    with pytest.raises(StackError, match=r"answered HTTP 500 .*: the run could not be stored"):
        _launch("run")
    assert len(kfp_api.calls("POST", "/runs")) == 1
    assert _runs() == []


def test_no_host_writes_the_spec_and_submits_nothing(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _stack(None, output_dir=str(repo / "out"))
    deployed = _launch("run")
    assert deployed.where == f"KFP pipeline spec {repo / 'out' / 'quickstart.yaml'}"
    assert "nothing was submitted" in capsys.readouterr().err
    [exported] = _launch("export", repo / "exported")
    assert (repo / "out" / "quickstart.yaml").read_text() == exported.read_text()
    assert _runs() == []
