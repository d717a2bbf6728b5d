"""docker mode for real: the stack's image builder builds the pipeline's image, DockerOperator runs each step.

Every conformance case runs with ``dag.test()`` in this process and must give
the local stack's artifacts; the SQLite store and the local artifact store are
bind-mounted into the step containers at the same paths.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from airflow_harness import AirflowHome, run_dag

from conveyor import Client, export_pipeline
from conveyor_testing.conformance import CASES, artifact_hashes, check_run, load_pipeline, run_case

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


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_conformance_in_docker_mode(
    case: Any, docker_stack: str, airflow_home: AirflowHome, docker_daemon: Any
) -> None:
    local = run_case(case, stack="default")
    pipe = load_pipeline(case).with_options(enable_cache=False)
    [dag_file] = export_pipeline(pipe, airflow_home.dags, stack=docker_stack, parameters=case.params)
    source = dag_file.read_text()
    assert "DockerOperator(" in source and "network_mode='host'" in source

    state, tasks = run_dag(dag_file, case.pipeline)

    run = Client().get_pipeline(case.pipeline).last_run
    check_run(case, run)
    assert artifact_hashes(run) == artifact_hashes(local)
    assert state == ("failed" if case.fails else "success"), tasks
    ran = [s for s in run.steps.values() if s.status in ("completed", "failed")]
    images = {s.record.image for s in ran}
    assert len(images) == 1 and "@sha256:" in next(iter(images))
    assert not docker_daemon.containers.list(all=True, filters={"ancestor": next(iter(images))})
