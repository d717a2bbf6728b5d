"""``step_mode: container``: each Prefect task runs its step in the pipeline's image, for real.

A real Prefect server, Docker daemon and registry; the image is built by the
stack's docker image builder and pushed to the registry before the flow runs.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from prefect_test_support import PrefectServer, register_container_stack

from conveyor import Client
from conveyor.exceptions import RunStoppedError, StepFailedError
from conveyor_testing.conformance import OrchestratorContract, artifact_hashes, case, check_run, run_case

pytestmark = [pytest.mark.integration, pytest.mark.prefect, pytest.mark.docker]


def read_flow_run(url: str, flow_run_id: str) -> Any:
    from prefect.client.orchestration import get_client

    from conveyor_prefect._orchestrator import prefect_api

    with prefect_api(url), get_client(sync_client=True) as client:
        return client.read_flow_run(flow_run_id)


class ContainerWatcher:
    """Sees every step container created while it watches, and inspects it while it exists.

    ``labels`` has every container's labels (from docker's events); ``inspected``
    the inspection of those that still existed when asked (a quick step may be
    removed first on a busy machine). Other sessions may share the daemon:
    select by the ``conveyor.run`` label.
    """

    def __init__(self, client: Any) -> None:
        self.client = client
        self.labels: list[dict[str, str]] = []
        self.inspected: list[dict[str, Any]] = []
        self._since = int(time.time()) - 1
        self._events: Any = None
        self._inspectors: list[threading.Thread] = []
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _inspect(self, container_id: str) -> None:
        import docker

        try:
            self.inspected.append(self.client.api.inspect_container(container_id))
        except docker.errors.NotFound:
            pass

    def _watch(self) -> None:
        self._events = self.client.events(
            decode=True, since=self._since, filters={"type": "container", "event": "create", "label": "conveyor.run"}
        )
        for event in self._events:
            self.labels.append(dict(event["Actor"]["Attributes"]))
            # One thread each: steps that run at once may end before a serial inspection reaches them.
            inspector = threading.Thread(target=self._inspect, args=(event["id"],), daemon=True)
            inspector.start()
            self._inspectors.append(inspector)

    def __enter__(self) -> ContainerWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        time.sleep(0.5)  # the last event may still be on its way
        if self._events is not None:
            self._events.close()
        self._thread.join(timeout=5)
        for inspector in self._inspectors:
            inspector.join(timeout=10)

    def steps_of(self, run_id: str) -> list[str]:
        """Step ids of the containers of one run, sorted."""
        return sorted(labels["conveyor.step"] for labels in self.labels if labels.get("conveyor.run") == run_id)

    def inspected_of(self, run_id: str) -> list[dict[str, Any]]:
        """Inspections of the containers of one run (at least one is required)."""
        found = [i for i in self.inspected if i["Config"]["Labels"].get("conveyor.run") == run_id]
        assert found, f"no container of run {run_id} could be inspected"
        return found


def images_of(run: Any) -> set[str | None]:
    return {s.record.image for s in run.steps.values() if s.status in ("completed", "failed")}


class TestPrefectContainerConformance(OrchestratorContract):
    """Every conformance case with ``step_mode: container``: one container per step, in the pushed image."""

    steps_in_containers = True

    @pytest.fixture
    def conformance_stack(self, container_stack: str, prefect_server: PrefectServer, docker_daemon: Any) -> str:
        return container_stack

    def run_on_engine(self, case: Any, stack: str, request: pytest.FixtureRequest) -> Any:
        with ContainerWatcher(request.getfixturevalue("docker_daemon")) as self.watcher:
            return run_case(case, stack=stack)

    def check_engine_run(self, case: Any, run: Any, reference: Any, request: pytest.FixtureRequest) -> None:
        registry = request.getfixturevalue("registry")
        assert run.orchestrator == "prefect"
        # Every step ran in the pipeline's image, by the digest the stack's registry holds.
        (image,) = images_of(run)
        repository, digest = image.split("@")
        assert repository == f"{registry.host}/ml/conveyor-{case.pipeline}"
        assert registry.manifest(repository.split("/", 1)[1], digest)[0] == digest
        ran = sorted(sid for sid, s in run.steps.items() if s.status in ("completed", "failed"))
        assert self.watcher.steps_of(run.id) == ran  # one container per step that ran
        assert all(info["HostConfig"]["NetworkMode"] == "host" for info in self.watcher.inspected_of(run.id))
        url = request.getfixturevalue("prefect_server").url
        assert read_flow_run(url, run.orchestrator_run_id).state.name == ("Failed" if case.fails else "Completed")

    def server_leak_surfaces(self, run: Any, request: pytest.FixtureRequest) -> list[Any]:
        # Prefect's server keeps flow runs, their parameters and deployments in its home's database.
        return [
            request.getfixturevalue("repo"),
            request.getfixturevalue("prefect_server").home,
            request.getfixturevalue("registry").root,
        ]


def run_in_thread(pipe: Any, **params: Any) -> tuple[threading.Thread, list[BaseException | None]]:
    """Start ``pipe(**params)`` in a thread; the list gets its exception (or None)."""
    outcome: list[BaseException | None] = []

    def target() -> None:
        try:
            pipe(**params)
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, outcome


def wait_for_running_step(step_id: str, outcome: list[BaseException | None], timeout: float = 600) -> Any:
    """The run whose step ``step_id`` is running (image builds come first, hence the long timeout)."""
    client = Client()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if outcome:
            pytest.fail(f"the run ended before step {step_id!r} started: {outcome[0]!r}")
        runs = client.store.list_runs()
        if (
            runs
            and runs[0].orchestrator_run_id
            and any(r.step_id == step_id and r.status == "running" for r in client.store.list_step_runs(runs[0].id))
        ):
            return runs[0]
        time.sleep(0.2)
    pytest.fail(f"step {step_id!r} never started")


def containers_of(docker_daemon: Any, run_id: str) -> list[Any]:
    return docker_daemon.containers.list(all=True, filters={"label": f"conveyor.run={run_id}"})


def test_cancelling_the_flow_run_in_prefect_stops_and_removes_the_containers(
    container_stack: str, prefect_server: PrefectServer, docker_daemon: Any
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.states import Cancelling
    from prefect_pipelines import slow

    from conveyor_prefect._orchestrator import prefect_api

    thread, outcome = run_in_thread(slow.with_options(enable_cache=False, stack=container_stack), seconds=120)
    record = wait_for_running_step("nap", outcome)
    assert [c.labels["conveyor.step"] for c in containers_of(docker_daemon, record.id)] == ["nap"]
    cancelled = time.monotonic()
    with prefect_api(prefect_server.url), get_client(sync_client=True) as prefect:
        prefect.set_flow_run_state(record.orchestrator_run_id, Cancelling(), force=True)
    thread.join(60)

    assert not thread.is_alive()
    assert time.monotonic() - cancelled < 30  # the step stops on SIGINT; no need for the kill
    assert isinstance(outcome[0], RunStoppedError), outcome
    assert containers_of(docker_daemon, record.id) == []
    run = Client().get_run(record.id)
    assert run.status == "stopped" and "cancelled in Prefect" in run.error
    assert run.steps["nap"].status == "stopped"
    assert "after_nap" not in run.steps or run.steps["after_nap"].status != "completed"
    assert read_flow_run(prefect_server.url, record.orchestrator_run_id).state.name == "Cancelled"


def test_step_timeout_in_a_container_fails_the_run_and_removes_the_container(
    container_stack: str, prefect_server: PrefectServer, docker_daemon: Any
) -> None:
    from prefect_pipelines import slow

    pipe = slow.with_options(enable_cache=False, stack=container_stack, steps={"nap": {"timeout": 5}})
    with pytest.raises(StepFailedError, match="timed out"):
        pipe(seconds=120)

    run = Client().get_pipeline("slow").last_run
    assert run.status == "failed"
    assert {sid: s.status for sid, s in run.steps.items()} == {
        "first": "completed",
        "nap": "failed",
        "after_nap": "skipped",
    }
    assert "timed out after 5 s" in run.steps["nap"].record.error
    nap = run.steps["nap"].record
    assert (nap.ended - nap.started).total_seconds() < 30
    assert containers_of(docker_daemon, run.id) == []
    assert read_flow_run(prefect_server.url, run.orchestrator_run_id).state.name == "Failed"


# -- metadata in PostgreSQL, artifacts in S3: nothing of this machine is mounted ---------------
@pytest.mark.s3
@pytest.mark.postgres
def test_remote_like_stores_give_the_local_artifacts(
    repo: Path,
    monkeypatch: pytest.MonkeyPatch,
    fresh_postgres_url: str,
    s3_endpoint: Any,
    s3_bucket: str,
    prefect_server: PrefectServer,
    registry: Any,
    base_image: str,
    wheel_cache: Path,
    session_images: None,
    no_leftover_containers: None,
    docker_daemon: Any,
) -> None:
    monkeypatch.setenv("CONVEYOR_STORE_URL", fresh_postgres_url)
    client = Client()
    client.register_component(
        "artifact_store",
        "s3",
        "s3",
        {
            "path": f"s3://{s3_bucket}/artifacts",
            **s3_endpoint.component_options(),
        },
    )
    client.register_stack("local_s3", {"orchestrator": "default", "artifact_store": "s3"})
    stack = register_container_stack(
        registry.host,
        base_image,
        wheel_cache,
        name="remote_like",
        artifact_store="s3",
        api_url=prefect_server.url,
        step_mode="container",
    )
    for c in (case("quickstart"), case("failing_step")):
        local = run_case(c, stack="local_s3")
        with ContainerWatcher(docker_daemon) as watcher:
            run = run_case(c, stack=stack)

        check_run(c, run)
        assert artifact_hashes(run) == artifact_hashes(local), c.name
        assert all(a.uri.startswith(f"s3://{s3_bucket}/") for s in run.steps.values() for a in s.outputs.values())
        assert run.stack_name == "remote_like"
        (image,) = images_of(run)
        assert image.startswith(f"{registry.host}/ml/conveyor-{c.pipeline}@sha256:")
        assert watcher.steps_of(run.id) == sorted(
            sid for sid, s in run.steps.items() if s.status in ("completed", "failed")
        )
        for info in watcher.inspected_of(run.id):
            assert info["Mounts"] == [], f"{c.name}: a folder of this machine was mounted: {info['Mounts']}"
            assert info["HostConfig"]["NetworkMode"] == "host"
            assert any(e.startswith("CONVEYOR_STORE_URL=postgresql") for e in info["Config"]["Env"])


# -- a deployment in a docker work pool, run by a real docker worker -------------------------
WORKER_TIMEOUT = 300.0


def test_deployment_runs_in_a_docker_work_pool(
    repo: Path,
    prefect_server: PrefectServer,
    registry: Any,
    base_image: str,
    wheel_cache: Path,
    session_images: None,
    docker_daemon: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    # prefect-docker comes with conveyor-prefect[docker]; without it this test must fail, not skip.
    import prefect_docker  # noqa: F401
    from prefect.client.orchestration import get_client
    from prefect_test_support import prefect_command, prefect_env, spawn, stop, tail

    from conveyor import Schedule, deploy_pipeline
    from conveyor_prefect._orchestrator import prefect_api
    from conveyor_testing.conformance import load_pipeline

    c = case("quickstart")
    local = run_case(c, stack="default")
    stack = register_container_stack(
        registry.host,
        base_image,
        wheel_cache,
        name="pooled",
        api_url=prefect_server.url,
        work_pool="conveyor-docker-test",
        work_pool_type="docker",
    )
    pipe = load_pipeline(c).with_options(enable_cache=False)
    assert (
        deploy_pipeline(pipe, stack=stack, parameters=c.params, schedule=Schedule(cron="0 0 1 1 *")).status
        == "deployed"
    )

    with prefect_api(prefect_server.url), get_client(sync_client=True) as client:
        assert client.read_work_pool("conveyor-docker-test").type == "docker"
        deployment = client.read_deployment_by_name("quickstart/quickstart")
        variables = deployment.job_variables
        image = variables["image"]
        assert image.startswith(f"{registry.host}/ml/conveyor-quickstart@sha256:")
        assert deployment.parameters["image"] == image
        assert variables["network_mode"] == "host"
        conveyor_dir = str((repo / ".conveyor").resolve())
        assert variables["volumes"] == [f"{conveyor_dir}:{conveyor_dir}"]  # SQLite and artifacts live there
        flow_run = client.create_flow_run_from_deployment(deployment.id)

    work = tmp_path_factory.mktemp("docker-worker")
    started = time.monotonic()
    worker = spawn(
        [*prefect_command(), "worker", "start", "--pool", "conveyor-docker-test", "--type", "docker", "--run-once"],
        work / "worker.log",
        prefect_env(prefect_server.home, PREFECT_API_URL=prefect_server.url),
        cwd=work,
    )
    try:
        worker.wait(WORKER_TIMEOUT)
    finally:
        stop(worker)
    print(f"docker worker: flow run done in {time.monotonic() - started:.1f} s")
    with prefect_api(prefect_server.url), get_client(sync_client=True) as client:
        state = client.read_flow_run(flow_run.id).state
    assert state.is_completed(), f"flow run ended {state.name}:\n{tail(work / 'worker.log', 40)}"

    runs = [r for r in Client().list_runs("quickstart") if r.orchestrator_run_id == str(flow_run.id)]
    assert len(runs) == 1, tail(work / "worker.log", 40)
    run = runs[0]
    check_run(c, run)
    assert artifact_hashes(run) == artifact_hashes(local)
    # The steps ran inside the flow's container, in the pipeline's image.
    assert images_of(run) == {image}
    assert run.record.host is None  # a PID inside the container means nothing out here
    leftovers = docker_daemon.containers.list(all=True, filters={"label": f"io.prefect.flow-run-id={flow_run.id}"})
    assert leftovers == []
