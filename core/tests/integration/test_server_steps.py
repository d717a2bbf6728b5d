"""What a step process holds when its run goes through a server: the URL and its run's token, nothing else."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from conveyor import Client
from conveyor_testing.server import ConveyorServer
from tests_support import write_module

pytestmark = [pytest.mark.server, pytest.mark.integration]

PIPE = """
import os, sys

from conveyor import get_step_context, pipeline, step

HEAVY = ("sqlalchemy", "alembic", "fastapi", "starlette", "uvicorn", "cryptography", "httpx")


@step(secrets=["api"], environment={"API_TOKEN": "{{api.token}}"})
def inspect_me() -> str:
    token = get_step_context().get_secret("api")["token"]
    return json.dumps({
        "env": sorted(k for k in os.environ if k.startswith("CONVEYOR_")),
        "key": os.environ.get("CONVEYOR_API_KEY", ""),
        "heavy": [m for m in HEAVY if m in sys.modules],
        "secret_ok": token == "tok-123" and os.environ["API_TOKEN"] == "tok-123",
    })


@pipeline(name="inspect")
def inspect():
    inspect_me()
"""


@pytest.fixture
def on_server(repo: Path, conveyor_server: ConveyorServer, monkeypatch: pytest.MonkeyPatch) -> ConveyorServer:
    conveyor_server.reset()
    monkeypatch.setenv("CONVEYOR_SERVER", conveyor_server.url)
    monkeypatch.setenv("CONVEYOR_API_KEY", conveyor_server.admin_key)
    # Set in the driver's environment on purpose: none of it may reach a step.
    monkeypatch.setenv("CONVEYOR_SECRETS_KEY_FILE", str(repo / "not-for-steps.key"))
    return conveyor_server


def test_a_step_process_holds_only_the_server_url_and_its_run_token(on_server: ConveyorServer, repo: Path) -> None:
    write_module(repo, "inspect_pipe", "import json\n" + PIPE)
    client = Client()
    client.create_secret("api", {"token": "tok-123"})
    client.register_component("orchestrator", "procs", "local", {"mode": "process"})
    client.register_stack("procs", {"orchestrator": "procs", "artifact_store": "default"})
    import inspect_pipe

    run = inspect_pipe.inspect.with_options(stack="procs")()
    assert run.status == "completed"
    seen = json.loads(run.steps["inspect_me"].output.load())
    assert seen["secret_ok"] is True
    assert "CONVEYOR_SERVER" in seen["env"] and "CONVEYOR_API_KEY" in seen["env"]
    for leaked in ("CONVEYOR_STORE_URL", "CONVEYOR_SECRETS_KEY", "CONVEYOR_SECRETS_KEY_FILE", "CONVEYOR_PROFILE"):
        assert leaked not in seen["env"]
    assert seen["key"].startswith("cvr_") and seen["key"] != on_server.admin_key
    # The step process imported no database or server code.
    assert seen["heavy"] == []
    # Its token outlives the run only by the server's leeway (60 s here); test_server_auth checks the end.
    status, _ = on_server.request("GET", f"/api/runs/{run.id}", token=seen["key"])
    assert status == 200


def test_the_same_pipeline_gives_the_same_artifacts_on_sql_and_on_the_server(
    repo: Path, conveyor_server: ConveyorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from conveyor._repository import close_stores

    write_module(repo, "twin_pipe", TWIN)
    import twin_pipe

    sql_run = twin_pipe.twin()
    sql_hashes = {s: v.output.content_hash for s, v in sql_run.steps.items()}
    close_stores()
    conveyor_server.reset()
    monkeypatch.setenv("CONVEYOR_SERVER", conveyor_server.url)
    monkeypatch.setenv("CONVEYOR_API_KEY", conveyor_server.admin_key)
    rest_run = twin_pipe.twin()
    assert Client().store.backend == "rest"
    assert {s: v.output.content_hash for s, v in rest_run.steps.items()} == sql_hashes
    close_stores()


def test_a_driver_reads_the_outputs_of_steps_it_completed_without_asking_again(
    on_server: ConveyorServer, repo: Path
) -> None:
    from conveyor.stores.rest import RestStore

    write_module(repo, "twin_pipe_threads", TWIN.replace('name="twin"', 'name="twin_threads"'))
    import twin_pipe_threads

    run = twin_pipe_threads.twin()  # the server's default stack: steps in this process's threads
    assert run.status == "completed"
    assert run.steps["total"].output.load() == 45
    driver = Client().store
    assert isinstance(driver, RestStore)
    fresh = RestStore(on_server.url, token=on_server.admin_key)
    asked = driver.http.requests
    # The leaf's outputs were never read: the driver still holds what the server answered when it completed.
    assert driver.outputs_of_step(run.id, "total") == fresh.outputs_of_step(run.id, "total")
    assert driver.http.requests == asked
    # Read once, then asked for like any other step's.
    assert driver.outputs_of_step(run.id, "total") == fresh.outputs_of_step(run.id, "total")
    assert driver.http.requests == asked + 1
    # The downstream step read the upstream step's artifact, as on a SQL store.
    inputs = fresh.step_run_artifacts(run.steps["total"].id, inputs=True)
    assert {k: a.id for k, a in inputs.items()} == {"values": run.steps["numbers"].output.id}
    fresh.close()


TWIN = """
from conveyor import pipeline, step


@step
def numbers() -> list[int]:
    return list(range(10))


@step
def total(values: list[int]) -> int:
    return sum(values)


@pipeline(name="twin")
def twin():
    total(numbers())
"""


ENGINE = """
from conveyor import get_step_context, pipeline, step


@step(secrets=["api"])
def first() -> int:
    return len(get_step_context().get_secret("api")["token"])


@step
def second(n: int) -> int:
    return n * 2


@pipeline(name="engine_like", enable_cache=False)
def engine_like():
    second(first())
"""


def test_an_engine_worker_with_a_runner_key_runs_steps_by_run_key(on_server: ConveyorServer, repo: Path) -> None:
    """What an Airflow, KFP or Prefect task does: the step command with --run-key, a runner key in its environment."""
    import os
    import subprocess
    import sys

    from conveyor.ir import Deployment
    from conveyor.stack import Stack

    write_module(repo, "engine_pipe", ENGINE)
    client = Client()
    client.create_secret("api", {"token": "tok-123"})
    import engine_pipe

    deployment = Deployment(pipeline=engine_pipe.engine_like.trace(), stack=Stack.from_record(client.get_stack()).ir)
    store = client.store
    store.save_deployment(deployment.id, store.get_or_create_pipeline("engine_like").id, deployment.canonical_json())
    runner = on_server.create_service_account("worker", "runner")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CONVEYOR_API", "CONVEYOR_SECRETS"))}
    env.update(CONVEYOR_SERVER=on_server.url, CONVEYOR_API_KEY=runner, PYTHONPATH=str(repo))
    base = [sys.executable, "-m", "conveyor.runtime"]
    for step_id in ("first", "second"):
        cmd = [*base, "run-step", "--deployment", deployment.id, "--step", step_id, "--run-key", "engine:42"]
        done = subprocess.run(cmd, env=env, cwd=repo, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    done = subprocess.run(
        [*base, "finish-run", "--deployment", deployment.id, "--run-key", "engine:42"],
        env=env,
        cwd=repo,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    [run] = client.list_runs("engine_like")
    assert run.status == "completed"
    assert run.steps["second"].output.load() == 2 * len("tok-123")
    # The runner key itself may not read what the steps read.
    status, _ = on_server.request("POST", "/api/secrets/resolve", {"names": ["api"]}, token=runner)
    assert status == 403


SLOW = """
import time
from pathlib import Path

from conveyor import pipeline, step


@step
def slow(marker: str) -> int:
    Path(marker).write_text("started")
    time.sleep(3)
    return 1


@pipeline(name="slow_one", enable_cache=False)
def slow_one(marker: str = ""):
    slow(marker)
"""


def test_a_step_whose_server_goes_away_fails_with_one_line(
    repo: Path, conveyor_server_factory: Callable[..., ConveyorServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The step command exits non-zero with one line (so the engine's retry applies), and does not hang."""
    import os
    import subprocess
    import sys
    import time

    from conveyor.ir import Deployment
    from conveyor.stack import Stack

    server = conveyor_server_factory()
    monkeypatch.setenv("CONVEYOR_SERVER", server.url)
    monkeypatch.setenv("CONVEYOR_API_KEY", server.admin_key)
    write_module(repo, "slow_pipe", SLOW)
    client = Client()
    import slow_pipe

    deployment = Deployment(pipeline=slow_pipe.slow_one.trace(), stack=Stack.from_record(client.get_stack()).ir)
    store = client.store
    store.save_deployment(deployment.id, store.get_or_create_pipeline("slow_one").id, deployment.canonical_json())
    runner = server.create_service_account("worker", "runner")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CONVEYOR_API", "CONVEYOR_SECRETS"))}
    env.update(CONVEYOR_SERVER=server.url, CONVEYOR_API_KEY=runner, PYTHONPATH=str(repo))
    marker = repo / "started.txt"
    cmd = [sys.executable, "-m", "conveyor.runtime", "run-step", "--deployment", deployment.id, "--step", "slow"]
    cmd += ["--run-key", "engine:7", "--param", f"marker={json.dumps(str(marker))}"]
    proc = subprocess.Popen(cmd, env=env, cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert marker.exists(), proc.communicate(timeout=30)
        server.stop()  # while the step's function runs
        stopped = time.monotonic()
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0
    assert time.monotonic() - stopped < 20
    assert "Traceback" not in stderr
    errors = [line for line in stderr.splitlines() if line.startswith("conveyor: error: ")]
    assert len(errors) == 1, stderr
    assert f"cannot reach the conveyor server at {server.url}" in errors[0]


FAILS = """
from conveyor import pipeline, step
from conveyor.alerters import alert_on_failure


@step(on_failure=alert_on_failure, enable_cache=False)
def breaks() -> int:
    raise ValueError("boom")


@pipeline(name="linked")
def linked():
    breaks()
"""


def test_a_failure_hook_links_to_the_runs_page_on_the_server(on_server: ConveyorServer, repo: Path) -> None:
    import urllib.request

    from conveyor.exceptions import StepFailedError
    from conveyor_testing.http_sink import HttpSink

    write_module(repo, "linked_pipe", FAILS)
    client = Client()
    with HttpSink() as sink:
        client.register_component("alerter", "sink", "webhook", {"url": f"{sink.url}/hook"})
        client.update_stack("default", {"alerter": "sink"})
        import linked_pipe

        with pytest.raises(StepFailedError, match="boom"):
            linked_pipe.linked()
        body = sink.only_request().json()
    run = client.get_pipeline("linked").last_run
    assert body["run_url"] == f"{on_server.url}/runs/{run.id}"
    assert body["text"].splitlines()[-1] == body["run_url"]  # what a person reads ends with where to look
    # The link opens the run's page for a person who may read the dashboard.
    session = on_server.create_user("reader", "viewer")
    request = urllib.request.Request(body["run_url"], headers={"Cookie": f"conveyor_dashboard={session}"})
    with urllib.request.urlopen(request) as page:
        assert page.status == 200 and run.name in page.read().decode()
