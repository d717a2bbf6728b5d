"""Pipelines on ``local_docker`` and the ``docker`` step operator, for real."""

from __future__ import annotations

import importlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from docker_test_support import register_docker_stack, step_logs, write_module

from conveyor_testing.conformance import CASES, OrchestratorContract, run_case

pytestmark = [pytest.mark.integration, pytest.mark.docker]


class TestLocalDockerConformance(OrchestratorContract):
    """Every conformance case on ``local_docker``: the local stack's artifacts, each step in the pipeline's image."""

    steps_in_containers = True

    @pytest.fixture
    def conformance_stack(self, docker_stack: str, examples_path: Path, docker_daemon: Any) -> str:
        return docker_stack

    def check_engine_run(self, case: Any, run: Any, reference: Any, request: pytest.FixtureRequest) -> None:
        assert run.record.orchestrator == "local_docker"
        ran = [s for s in run.steps.values() if s.status in ("completed", "failed")]
        images = {s.record.image for s in ran}
        assert len(images) == 1 and next(iter(images)).split("@")[1].startswith("sha256:")
        assert all(s.record.image is None for s in reference.steps.values())
        if case.fails:
            explode = run.steps["explode"]
            assert explode.status == "failed"
            assert "Traceback" in step_logs(explode)  # the step's own log, written inside the container

    def server_leak_surfaces(self, run: Any, request: pytest.FixtureRequest) -> list[Any]:
        # The registry the image was pushed to, besides the repository (the images' layers are scanned too).
        return [request.getfixturevalue("repo"), request.getfixturevalue("registry").root]


def test_image_digest_is_part_of_the_cache_key(docker_stack, examples_path):
    from conveyor_testing.conformance import load_pipeline

    quickstart = next(c for c in CASES if c.name == "quickstart")
    pipe = load_pipeline(quickstart).with_options(stack=docker_stack)
    first = pipe(**quickstart.params)
    again = pipe(**quickstart.params)
    local = load_pipeline(quickstart).with_options(stack="default")(**quickstart.params)

    assert {s.status for s in first.steps.values()} == {"completed"}
    assert {s.status for s in again.steps.values()} == {"cached"}
    assert {s.status for s in local.steps.values()} == {"completed"}  # another image (none) is another key


FAILS_EARLY = """
from conveyor import pipeline, step
import helper_not_shipped


@step
def uses_helper() -> int:
    return helper_not_shipped.VALUE


@pipeline(name="fails_early")
def fails_early() -> None:
    uses_helper()
"""


def test_step_whose_code_cannot_load_in_the_container_fails_with_its_output(docker_stack, repo):
    from conveyor.exceptions import StepFailedError

    (repo / ".dockerignore").write_text("helper_not_shipped.py\n")
    write_module(repo, "helper_not_shipped", "VALUE = 1\n")
    write_module(repo, "fails_early_pipeline", FAILS_EARLY)
    pipe = importlib.import_module("fails_early_pipeline").fails_early.with_options(stack=docker_stack)

    with pytest.raises(StepFailedError, match="uses_helper"):
        pipe()

    from conveyor import Client

    run = Client().get_pipeline("fails_early").last_run
    step = run.steps["uses_helper"]
    assert run.status == "failed"
    assert step.status == "failed"
    assert "helper_not_shipped" in step.record.error
    assert "helper_not_shipped" in step_logs(step)


OPERATOR = """
import os
from conveyor import pipeline, step


@step
def on_host() -> str:
    return "container" if os.environ.get("CONVEYOR_SOURCE_ROOT") == "/app" else "host"


@step(step_operator="docker")
def in_container(before: str) -> str:
    return before + "+" + ("container" if os.environ.get("CONVEYOR_SOURCE_ROOT") == "/app" else "host")


@pipeline(name="operated")
def operated() -> None:
    in_container(on_host())
"""


def test_docker_step_operator_runs_only_the_steps_that_ask(
    repo, registry, base_image, wheel_cache, session_images, no_leftovers
):
    name = register_docker_stack(
        f"{registry.host}/ml", base_image, wheel_cache, name="operated", orchestrator="default", step_operator=True
    )
    write_module(repo, "operated_pipeline", OPERATOR)
    pipe = importlib.import_module("operated_pipeline").operated.with_options(stack=name)

    run = pipe()

    assert run.status == "completed"
    assert run.steps["in_container"].output.load() == "host+container"
    assert run.steps["on_host"].record.image is None
    assert run.steps["in_container"].record.image.startswith(f"{registry.host}/ml/conveyor-operated@sha256:")


SLOW = """
import time
from conveyor import pipeline, step


@step
def slow() -> int:
    print("slow step started", flush=True)
    time.sleep(120)
    return 1


@pipeline(name="slow")
def slow_pipeline() -> None:
    slow()


if __name__ == "__main__":
    slow_pipeline.with_options(stack="{stack}")()
"""


def test_ctrl_c_stops_and_removes_the_step_containers(docker_stack, repo, docker_daemon):
    script = repo / "slow_run.py"
    script.write_text(textwrap.dedent(SLOW.replace("{stack}", docker_stack)))
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, str(script)], cwd=repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        deadline = time.monotonic() + 300
        output = []
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            output.append(line)
            if "slow step started" in line:
                break
        assert "slow step started" in "".join(output), "".join(output)
        assert docker_daemon.containers.list(filters={"label": "conveyor.step=slow"})
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=180)  # stopping containers on a busy machine takes a while
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode != 0
    assert not docker_daemon.containers.list(all=True, filters={"label": "conveyor.step=slow"})

    from conveyor import Client

    run = Client().get_pipeline("slow").last_run
    assert run.status == "stopped"
    assert run.steps["slow"].status == "stopped"


def test_step_timeout_kills_its_container(docker_stack, repo, docker_daemon):
    from conveyor.exceptions import StepFailedError

    write_module(
        repo,
        "timeout_pipeline",
        SLOW.replace("@step\n", "@step(timeout=3)\n", 1).replace('name="slow"', 'name="timeout"'),
    )
    pipe = importlib.import_module("timeout_pipeline").slow_pipeline.with_options(stack=docker_stack)
    started = time.monotonic()
    with pytest.raises(StepFailedError, match="timed out after 3 s"):
        pipe()
    assert time.monotonic() - started < 60
    assert not docker_daemon.containers.list(all=True, filters={"label": "conveyor.step=slow"})


def test_containers_use_host_network_and_mount_only_local_stores(docker_stack, repo, examples_path, docker_daemon):
    watcher = _ContainerWatcher(docker_daemon)
    with watcher:
        run = run_case(next(c for c in CASES if c.name == "quickstart"), stack=docker_stack)
    assert watcher.of_run(run.id)
    for info in watcher.of_run(run.id):
        assert info["HostConfig"]["NetworkMode"] == "host"
        sources = sorted(m["Source"] for m in info["Mounts"])
        assert sources == [str(Path(repo, ".conveyor").resolve())]  # the SQLite file's folder holds the artifacts too


class _ContainerWatcher:
    """Inspects every step container as soon as it is created (they are removed when they end).

    A created container's mounts and network are fixed, and "create" comes a
    whole interpreter start-up before the step can end and the container go.
    """

    def __init__(self, client) -> None:
        import threading

        self.client = client
        self.seen: list[dict] = []
        self._since = int(time.time()) - 1
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        import docker

        events = self.client.events(
            decode=True, since=self._since, filters={"type": "container", "event": "create", "label": "conveyor.run"}
        )
        self._events = events
        for event in events:
            run = event.get("Actor", {}).get("Attributes", {}).get("conveyor.run")
            try:
                self.seen.append({**self.client.api.inspect_container(event["id"]), "run": run})
            except docker.errors.NotFound:
                self.seen.append({"missed": event["id"], "run": run})
            if self._stop.is_set():
                break

    def of_run(self, run_id: str) -> list[dict]:
        """The containers of one run (other test sessions may share the daemon)."""
        return [info for info in self.seen if info["run"] == run_id]

    def __enter__(self) -> _ContainerWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        time.sleep(0.5)
        self._stop.set()
        events = getattr(self, "_events", None)
        if events is not None:
            events.close()
        self._thread.join(timeout=5)
        missed = [s for s in self.seen if "missed" in s]
        assert not missed, f"containers ended before they could be inspected: {missed}"
