"""docker mode for real: the stack's image builder builds the pipeline's image, each op runs its step in it.

The ops start their containers with the docker SDK (host networking); the
SQLite store and the local artifact store are bind-mounted at the same paths.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from dagster_server_support import dagster_surfaces, run_case_through_server
from dagster_test_pipelines import uses_app_secret

from conveyor import Client
from conveyor_testing.conformance import OrchestratorContract

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


class TestDagsterDockerModeConformance(OrchestratorContract):
    """Every conformance case with ``mode: docker``: each op runs its step in the pipeline's image."""

    steps_in_containers = True

    @pytest.fixture
    def conformance_stack(self, docker_stack: str, docker_daemon: Any) -> str:
        return docker_stack

    def check_engine_run(self, case: Any, run: Any, reference: Any, request: pytest.FixtureRequest) -> None:
        assert run.orchestrator == "dagster"
        ran = [s for s in run.steps.values() if s.status in ("completed", "failed")]
        images = {s.record.image for s in ran}
        assert len(images) == 1 and "@sha256:" in next(iter(images))
        leftovers = request.getfixturevalue("docker_daemon").containers.list(
            all=True, filters={"label": f"dagster.run={run.orchestrator_run_id}"}
        )
        assert leftovers == []

    def run_through_server(self, case: Any, stack: str, request: pytest.FixtureRequest, runner_key: str) -> Any:
        return run_case_through_server(case, stack, request, runner_key)

    def server_leak_surfaces(self, run: Any, request: pytest.FixtureRequest) -> list[Any]:
        return [*dagster_surfaces(request), request.getfixturevalue("registry").root]


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
