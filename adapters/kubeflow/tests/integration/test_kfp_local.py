"""Every conformance pipeline, compiled to KFP YAML, runs for real in ``kfp.local`` with Docker.

The image is built and pushed by the stack's ``docker`` image builder to a
real registry on 127.0.0.1, removed from the local daemon, and pulled back by
kfp.local's ``DockerRunner`` (host networking). Step containers reach the
metadata store on a real PostgreSQL server and the artifacts on a real S3
server (SeaweedFS), as pods of a cluster would. The artifacts must hash the
same as a run of the same pipeline on the local stack.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from kfp_test_support import register_kfp_stack

from conveyor_testing.conformance import Case, OrchestratorContract, load_pipeline
from conveyor_testing.http_sink import HttpSink

_HOOK = "conveyor.alerters:alert_on_failure"

pytestmark = [pytest.mark.integration, pytest.mark.kubeflow, pytest.mark.docker, pytest.mark.postgres, pytest.mark.s3]


@pytest.fixture
def kfp_stack(
    repo: Path,
    monkeypatch: pytest.MonkeyPatch,
    fresh_postgres_url: str,
    s3_endpoint: Any,
    s3_bucket: str,
    registry: Any,
    base_image: str,
) -> dict[str, Any]:
    """A repository on PostgreSQL + S3 with a ``kubeflow`` stack that builds and pushes real images."""
    from conveyor import Client

    monkeypatch.setenv("CONVEYOR_STORE_URL", fresh_postgres_url)
    client = Client()
    client.register_component("image_builder", "builder", "docker", {"parent_image": base_image})
    client.register_component("container_registry", "registry", "default", {"uri": f"{registry.host}/ml"})
    s3 = s3_endpoint.component_options()
    register_kfp_stack(
        artifact_path=f"s3://{s3_bucket}/kfp",
        artifact_options=s3,
        builder="builder",
        registry="registry",
        activate=False,
        output_dir=str(repo / "specs"),
    )
    client.register_component("artifact_store", "local_s3", "s3", {"path": f"s3://{s3_bucket}/local", **s3})
    client.register_component("orchestrator", "here", "local", {})
    client.register_stack("local_s3", {"orchestrator": "here", "artifact_store": "local_s3"})
    return {"store_url": fresh_postgres_url, "registry": registry, "repo": repo}


def _run_in_kfp_local(
    spec: Path, store_url: str | None, root: Path, runner_key: str | None = None, **arguments: Any
) -> None:
    """Run a spec in kfp.local; the pods get the store's URL, or (on a conveyor server) a runner key."""
    import kfp.local
    from kfp import components

    environment = {"CONVEYOR_STORE_URL": store_url} if store_url else {}
    if runner_key is not None:
        # What a Kubernetes secret (the orchestrator's secret_env) gives the pods of a cluster.
        environment["CONVEYOR_API_KEY"] = runner_key
    kfp.local.init(
        runner=kfp.local.DockerRunner(network_mode="host", environment=environment),
        pipeline_root=str(root / "kfp-root"),
        raise_on_error=False,
    )
    pipeline = components.load_component_from_file(str(spec))
    pipeline(**arguments)


def _drop_local_image(image: str) -> None:
    """Untag the pushed image in the daemon, so kfp.local has to pull it from the registry."""
    import docker

    repository = image.split("@", 1)[0]
    client = docker.from_env()
    try:
        for local in client.images.list(name=repository):
            for ref in [*local.tags, *local.attrs.get("RepoDigests", [])]:
                if ref.startswith(repository + ":") or ref.startswith(repository + "@"):
                    try:
                        client.images.remove(ref, noprune=True)
                    except docker.errors.ImageNotFound:
                        pass
        assert not any(image in [*i.tags, *i.attrs.get("RepoDigests", [])] for i in client.images.list())
    finally:
        client.close()


# kfp.local shows task display names nowhere and says so; a cluster's UI shows them.
@pytest.mark.filterwarnings("ignore:Task .* have no effect in the current local runner")
class TestKfpLocalConformance(OrchestratorContract):
    """Every conformance case compiled to KFP YAML and run by kfp.local's DockerRunner, its image pulled back."""

    @pytest.fixture
    def conformance_stack(self, kfp_stack: dict[str, Any]) -> str:
        return "on_kfp"

    @pytest.fixture
    def reference_stack(self, kfp_stack: dict[str, Any]) -> str:
        # The local orchestrator on the same PostgreSQL store and S3 server.
        return "local_s3"

    def run_on_engine(self, case: Case, stack: str, request: pytest.FixtureRequest) -> Any:
        from conveyor import Client, export_pipeline

        kfp_stack = request.getfixturevalue("kfp_stack")
        repo: Path = kfp_stack["repo"]
        pipe = load_pipeline(case).with_options(enable_cache=False)
        [spec] = export_pipeline(pipe, repo / "specs", stack=stack, parameters=case.params)
        docs = list(yaml.safe_load_all(spec.read_text()))
        image = docs[0]["deploymentSpec"]["executors"]["exec-conveyor-step"]["container"]["image"]
        assert image.startswith(kfp_stack["registry"].host + "/ml/") and "@sha256:" in image
        _drop_local_image(image)

        _run_in_kfp_local(spec, kfp_stack["store_url"], repo)
        return Client().get_pipeline(pipe.name).last_run

    def check_engine_run(self, case: Case, run: Any, reference: Any, request: pytest.FixtureRequest) -> None:
        assert run.orchestrator == "kubeflow"

    # -- through a conveyor server
    steps_in_containers = True

    @pytest.fixture
    def server_stack(
        self, server_repository: Any, repo: Path, s3_endpoint: Any, s3_bucket: str, registry: Any, base_image: str
    ) -> str:
        from conveyor import Client

        client = Client()
        client.register_component("image_builder", "builder", "docker", {"parent_image": base_image})
        client.register_component("container_registry", "registry", "default", {"uri": f"{registry.host}/ml"})
        return register_kfp_stack(
            artifact_path=f"s3://{s3_bucket}/kfp-server",
            artifact_options=s3_endpoint.component_options(),
            builder="builder",
            registry="registry",
            activate=False,
            output_dir=str(repo / "specs"),
        )

    def run_through_server(self, case: Case, stack: str, request: pytest.FixtureRequest, runner_key: str) -> Any:
        from conveyor import Client, export_pipeline

        repo: Path = request.getfixturevalue("repo")
        pipe = load_pipeline(case).with_options(enable_cache=False)
        [spec] = export_pipeline(pipe, repo / "specs", stack=stack, parameters=case.params)
        server_url = request.getfixturevalue("server_repository").url
        assert server_url in spec.read_text()  # the pods' store is the server (its key comes from the runner)
        _run_in_kfp_local(spec, None, repo, runner_key)
        return Client().get_pipeline(pipe.name).last_run

    def server_leak_surfaces(self, run: Any, request: pytest.FixtureRequest) -> list[Any]:
        # The spec and kfp.local's outputs are in the repository; the image went through the registry.
        return [request.getfixturevalue("repo"), request.getfixturevalue("registry").root]


@pytest.mark.filterwarnings("ignore:Task .* have no effect in the current local runner")
def test_a_parameter_changed_in_kfp_reaches_the_steps(kfp_stack: dict[str, Any]) -> None:
    from conveyor import Client, export_pipeline
    from conveyor_testing.conformance import case

    repo: Path = kfp_stack["repo"]
    pipe = load_pipeline(case("quickstart")).with_options(enable_cache=False)
    [spec] = export_pipeline(pipe, repo / "specs", stack="on_kfp", parameters={"n": 20})
    _run_in_kfp_local(spec, kfp_stack["store_url"], repo, n=7)  # as if changed in KFP's UI

    run = Client().get_pipeline("quickstart").last_run
    assert run.status == "completed"
    assert run.parameters == {"n": 7}
    assert run.steps["load_data"].outputs["numbers"].load() == list(range(7))
    assert run.steps["total"].outputs["output"].load() == 0 + 2 + 4 + 6


def _alert_to(sink: HttpSink) -> None:
    from conveyor import Client

    Client().register_component("alerter", "sink", "webhook", {"url": f"{sink.url}/hook"})
    Client().update_stack("on_kfp", {"alerter": "sink"})


@pytest.mark.filterwarnings("ignore:Task .* have no effect in the current local runner")
def test_a_failing_step_runs_the_pipeline_failure_hook_once(kfp_stack: dict[str, Any], http_sink: HttpSink) -> None:
    """The failing step's own container runs the pipeline's failure hook; the exit task finds it done."""
    from conveyor import Client, export_pipeline
    from conveyor.alerters import alert_on_failure
    from conveyor_testing.conformance import case

    _alert_to(http_sink)
    repo: Path = kfp_stack["repo"]
    pipe = load_pipeline(case("failing_step")).with_options(enable_cache=False, on_failure=alert_on_failure)
    [spec] = export_pipeline(pipe, repo / "specs", stack="on_kfp")
    _run_in_kfp_local(spec, kfp_stack["store_url"], repo)

    body = http_sink.only_request().json()
    run = Client().get_pipeline("failing_step").last_run
    assert run.status == "failed" and run.orchestrator == "kubeflow"
    assert (body["run"], body["step"], body["event"]) == (run.name, None, "failure")
    assert body["error"] == "step 'explode' failed: ValueError: bad input 3"
    assert [(h.step_id, h.event, h.status) for h in run.hooks] == [(None, "failure", "completed")]


@pytest.mark.filterwarnings("ignore:Task .* have no effect in the current local runner")
def test_a_killed_step_pod_still_settles_the_run(kfp_stack: dict[str, Any], http_sink: HttpSink) -> None:
    """A step whose container dies without a word (OOM, eviction) is failed by the exit task, not left running.

    The exit task runs the failure hooks that the dead container could not: the step's and the pipeline's.
    """
    import threading
    import time

    import docker
    from kfp_test_pipelines import napping

    from conveyor import Client, export_pipeline
    from conveyor.alerters import alert_on_failure

    _alert_to(http_sink)
    repo: Path = kfp_stack["repo"]
    pipe = napping.with_options(enable_cache=False, on_failure=alert_on_failure, steps={"nap": {"on_failure": [_HOOK]}})
    [spec] = export_pipeline(pipe, repo / "specs", stack="on_kfp")
    runner = threading.Thread(target=_run_in_kfp_local, args=(spec, kfp_stack["store_url"], repo), daemon=True)
    runner.start()
    client = docker.from_env()
    try:
        deadline = time.monotonic() + 300
        victim = None
        while victim is None and time.monotonic() < deadline and runner.is_alive():
            try:
                running = client.containers.list()
            except docker.errors.NotFound:  # a container went away while being listed
                continue
            for container in running:
                args = container.attrs.get("Args") or []
                if "run-step" in args and args[args.index("--step") + 1] == "nap":
                    victim = container
            time.sleep(0.2)
        assert victim is not None, "the nap step never started"
        while not any(
            r.step_id == "nap" for r in Client().store.list_step_runs(Client().get_pipeline("napping").last_run.id)
        ):
            assert time.monotonic() < deadline
            time.sleep(0.2)
        victim.kill(signal="SIGKILL")
    finally:
        client.close()
    runner.join(300)
    assert not runner.is_alive()

    run = Client().get_pipeline("napping").last_run
    assert run.status == "failed"
    assert "before step 'nap' finished" in run.record.error
    assert {sid: s.status for sid, s in run.steps.items()} == {"first": "completed", "nap": "failed", "one": "skipped"}
    assert "was killed" in run.steps["nap"].record.error
    posts = sorted((r.json()["step"] or "", r.json()["error"]) for r in http_sink.wait_for(2))
    time.sleep(0.5)
    assert len(http_sink.requests) == 2
    assert posts == [("", run.record.error), ("nap", run.steps["nap"].record.error)]


def test_cli_export_writes_the_same_spec_as_the_api(kfp_stack: dict[str, Any]) -> None:
    import subprocess
    import sys

    from conveyor import export_pipeline
    from conveyor_testing.conformance import EXAMPLES, case

    repo: Path = kfp_stack["repo"]
    [api] = export_pipeline(load_pipeline(case("quickstart")), repo / "api", stack="on_kfp", parameters={"n": 20})
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "conveyor.cli",
            "pipeline",
            "export",
            f"{EXAMPLES / 'quickstart.py'}:quickstart",
            "--stack",
            "on_kfp",
            "--output",
            "demo.yaml",
            "-p",
            "n=20",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "demo.yaml"
    assert (repo / "demo.yaml").read_bytes() == api.read_bytes()
