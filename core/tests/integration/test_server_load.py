"""Two server workers on PostgreSQL under 16 pipelines of 20 steps at once: every run completes, nothing is lost."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conveyor.stores import RunStatus
from conveyor.stores.rest import RestStore
from conveyor_testing.server import ConveyorServer
from tests_support import write_module

pytestmark = [pytest.mark.server, pytest.mark.integration, pytest.mark.postgres]

PIPELINES = 16
STEPS = 20

# Every output is given the one name "value": 320 writers of one artifact name take turns for its versions.
CHAIN = f"""
from typing import Annotated

from conveyor import ArtifactConfig, pipeline, step


@step
def first() -> Annotated[int, "value", ArtifactConfig(name="value")]:
    return 0


@step
def add_one(value: int) -> Annotated[int, "value", ArtifactConfig(name="value")]:
    return value + 1


@pipeline(name="chain", enable_cache=False)
def chain():
    value = first()
    for _ in range({STEPS - 1}):
        value = add_one(value)
"""


def test_sixteen_pipelines_at_once_on_two_workers_lose_nothing(
    conveyor_server_factory: Callable[..., ConveyorServer], postgres_server: Any, tmp_path: Path
) -> None:
    server = conveyor_server_factory(postgres_server.url(postgres_server.create_database("load")), workers=2)
    editor = server.create_service_account("ci", "editor")
    write_module(tmp_path, "chain_pipe", CHAIN)
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("CONVEYOR_STORE", "CONVEYOR_SERVER", "CONVEYOR_API"))
    }
    env.update(
        CONVEYOR_SERVER=server.url,
        CONVEYOR_API_KEY=editor,
        CONVEYOR_REPOSITORY=str(tmp_path),
        CONVEYOR_CONFIG_DIR=str(tmp_path / "config"),
        PYTHONPATH=str(tmp_path),
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", "import chain_pipe; chain_pipe.chain()"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for _ in range(PIPELINES)
    ]
    errors = []
    for proc in procs:
        _, err = proc.communicate(timeout=600)
        if proc.returncode != 0:
            errors.append(err.decode(errors="replace")[-2000:])
    assert errors == []

    admin = RestStore(server.url, token=server.admin_key)
    runs = admin.list_runs(admin.get_pipeline("chain").id)
    assert len(runs) == PIPELINES and {r.status for r in runs} == {RunStatus.COMPLETED}
    for run in runs:
        steps = admin.list_step_runs(run.id)
        assert len(steps) == STEPS and {s.status for s in steps} == {RunStatus.COMPLETED}
        last = admin.outputs_of_step(run.id, f"add_one_{STEPS - 1}")["value"]
        assert last.uri  # each run's chain reached its end
    # Every output registered once: versions 1..320 of "value", no gap, no duplicate.
    versions = sorted(a.version for a in admin.list_artifacts("value"))
    assert versions == list(range(1, PIPELINES * STEPS + 1))
    admin.close()
