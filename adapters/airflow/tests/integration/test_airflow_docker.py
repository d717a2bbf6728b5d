"""docker mode for real: the stack's image builder builds the pipeline's image, DockerOperator runs each step.

Every conformance case runs with ``dag.test()`` in this process and must give
the local stack's artifacts; the SQLite store and the local artifact store are
bind-mounted into the step containers at the same paths.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from airflow_harness import AirflowHome, airflow_surfaces, run_case_on_airflow

from conveyor import Client
from conveyor_testing.conformance import OrchestratorContract

pytestmark = [
    pytest.mark.integration,
    pytest.mark.airflow,
    pytest.mark.docker,
    # Airflow's DockerHook leaves its API client's socket to the garbage collector.
    pytest.mark.filterwarnings(
        "ignore:Exception ignored in. <socket.socket[^>]*docker.sock>:pytest.PytestUnraisableExceptionWarning"
    ),
]


@pytest.fixture
def docker_stack(repo: Path, registry: Any, base_image: str, wheel_cache: Path, built_images: None) -> str:
    client = Client()
    client.register_component(
        "image_builder", "builder", "docker", {"parent_image": base_image, "cache_dir": str(wheel_cache)}
    )
    client.register_component("container_registry", "reg", "default", {"uri": f"{registry.host}/ml"})
    client.register_component("orchestrator", "af", "airflow", {"operator": "docker"})
    client.register_stack(
        "on_airflow_docker",
        {"orchestrator": "af", "artifact_store": "default", "image_builder": "builder", "container_registry": "reg"},
    )
    return "on_airflow_docker"


class TestAirflowDockerModeConformance(OrchestratorContract):
    """Every conformance case as a DAG whose DockerOperator tasks run the steps in the pipeline's image."""

    steps_in_containers = True

    @pytest.fixture
    def conformance_stack(self, docker_stack: str, airflow_home: AirflowHome, docker_daemon: Any) -> str:
        return docker_stack

    def run_on_engine(self, case: Any, stack: str, request: pytest.FixtureRequest) -> Any:
        run, dag_file = run_case_on_airflow(case, stack, request.getfixturevalue("airflow_home").dags)
        source = dag_file.read_text()
        assert "DockerOperator(" in source and "network_mode='host'" in source
        return run

    def check_engine_run(self, case: Any, run: Any, reference: Any, request: pytest.FixtureRequest) -> None:
        ran = [s for s in run.steps.values() if s.status in ("completed", "failed")]
        images = {s.record.image for s in ran}
        assert len(images) == 1 and "@sha256:" in next(iter(images))
        docker_daemon = request.getfixturevalue("docker_daemon")
        assert not docker_daemon.containers.list(all=True, filters={"ancestor": next(iter(images))})

    def run_through_server(self, case: Any, stack: str, request: pytest.FixtureRequest, runner_key: str) -> Any:
        run, dag_file = run_case_on_airflow(case, stack, request.getfixturevalue("airflow_home").dags, runner_key)
        # The step containers get the worker's key when the task runs; the file names only where it comes from.
        assert "private_environment=WORKER_CREDENTIAL" in dag_file.read_text()
        return run

    def server_leak_surfaces(self, run: Any, request: pytest.FixtureRequest) -> list[Any]:
        return [*airflow_surfaces(request), request.getfixturevalue("registry").root]
