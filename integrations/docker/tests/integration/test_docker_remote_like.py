"""The path to the cloud: metadata in a database server, artifacts in S3, nothing mounted."""

from __future__ import annotations

import pytest
from docker_test_support import register_docker_stack
from test_docker_orchestrator import _ContainerWatcher

from conveyor_testing.conformance import CASES, artifact_hashes, check_run, run_case

pytestmark = [pytest.mark.integration, pytest.mark.docker, pytest.mark.s3]


def _remote_like(monkeypatch, store_url, s3_endpoint, s3_bucket, registry, base_image, wheel_cache):
    from conveyor import Client

    monkeypatch.setenv("CONVEYOR_STORE_URL", store_url)
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
    return register_docker_stack(
        f"{registry.host}/ml", base_image, wheel_cache, name="remote_like", artifact_store="s3"
    )


def _check_cases(cases, docker_daemon, stack):
    for case in cases:
        local = run_case(case, stack="local_s3")
        watcher = _ContainerWatcher(docker_daemon)
        with watcher:
            boxed = run_case(case, stack=stack)
        check_run(case, boxed)
        assert artifact_hashes(boxed) == artifact_hashes(local), case.name
        assert all(a.uri.startswith("s3://") for s in boxed.steps.values() for a in s.outputs.values())
        assert watcher.of_run(boxed.id)
        for info in watcher.of_run(boxed.id):
            assert info["Mounts"] == [], f"{case.name}: a host folder was mounted: {info['Mounts']}"
            assert info["HostConfig"]["NetworkMode"] == "host"


@pytest.mark.postgres
def test_postgres_and_s3_give_the_local_stacks_artifacts(
    repo,
    monkeypatch,
    fresh_postgres_url,
    s3_endpoint,
    s3_bucket,
    registry,
    base_image,
    wheel_cache,
    session_images,
    no_leftovers,
    examples_path,
    docker_daemon,
):
    stack = _remote_like(monkeypatch, fresh_postgres_url, s3_endpoint, s3_bucket, registry, base_image, wheel_cache)
    _check_cases(CASES, docker_daemon, stack)


@pytest.mark.mysql
def test_mariadb_and_s3_give_the_local_stacks_artifacts(
    repo,
    monkeypatch,
    fresh_mariadb_url,
    s3_endpoint,
    s3_bucket,
    registry,
    base_image,
    wheel_cache,
    session_images,
    no_leftovers,
    examples_path,
    docker_daemon,
):
    stack = _remote_like(monkeypatch, fresh_mariadb_url, s3_endpoint, s3_bucket, registry, base_image, wheel_cache)
    cases = [c for c in CASES if c.name in ("quickstart", "failing_step")]
    _check_cases(cases, docker_daemon, stack)
