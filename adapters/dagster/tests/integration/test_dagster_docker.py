"""docker mode for real: the stack's image builder builds the pipeline's image, each op runs its step in it.

The ops start their containers with the docker SDK (host networking); the
SQLite store and the local artifact store are bind-mounted at the same paths.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from dagster_test_pipelines import uses_app_secret

from conveyor import Client
from conveyor_testing.conformance import artifact_hashes, case, check_run, run_case

pytestmark = [pytest.mark.integration, pytest.mark.dagster, pytest.mark.docker]

TOKEN = "dg-71c0-uNiQuE-container-token-5e2b"


@pytest.fixture
def docker_stack(
    repo: Path, dagster_home: Path, registry: Any, base_image: str, wheel_cache: Path, built_images: None
) -> str:
    client = Client()
    client.register_component(
        "image_builder", "builder", "docker", {"parent_image": base_image, "cache_dir": str(wheel_cache)}
    )
    client.register_component("container_registry", "reg", "default", {"uri": f"{registry.host}/ml"})
    client.register_component("orchestrator", "dg", "dagster", {"mode": "docker", "max_concurrent": 4})
    client.register_stack(
        "on_dagster_docker",
        {"orchestrator": "dg", "artifact_store": "default", "image_builder": "builder", "container_registry": "reg"},
    )
    return "on_dagster_docker"


@pytest.mark.parametrize("name", ["quickstart", "failing_step"])
def test_conformance_in_docker_mode(name: str, docker_stack: str, docker_daemon: Any) -> None:
    c = case(name)
    local = run_case(c, stack="default")
    run = run_case(c, stack=docker_stack)
    check_run(c, run)
    assert artifact_hashes(run) == artifact_hashes(local)
    ran = [s for s in run.steps.values() if s.status in ("completed", "failed")]
    images = {s.record.image for s in ran}
    assert len(images) == 1 and "@sha256:" in next(iter(images))
    leftovers = docker_daemon.containers.list(
        all=True, filters={"label": f"dagster.run={run.record.orchestrator_run_id}"}
    )
    assert leftovers == []


def test_a_step_container_gets_the_secrets_key_from_the_op_at_run_time(
    docker_stack: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from conveyor.secrets import ENV_SECRETS_KEY, ENV_SECRETS_OWNER, generate_key

    # The container sees neither this repository's key file nor its owner file: the op passes both on.
    monkeypatch.setenv(ENV_SECRETS_KEY, generate_key())
    monkeypatch.setenv(ENV_SECRETS_OWNER, "team-dagster")
    Client().create_secret("app", {"token": TOKEN})
    run = uses_app_secret.with_options(stack=docker_stack)()
    assert run.status == "completed" and run.steps["token_length"].output.load() == len(TOKEN)
    assert "@sha256:" in (run.steps["token_length"].record.image or "")
    assert TOKEN not in run.steps["token_length"].logs()
