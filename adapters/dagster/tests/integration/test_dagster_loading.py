"""Exported files load in Dagster with no errors, and hold what the pipeline says; hostile values stay data."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import dagster_test_pipelines as tp
import pytest
from hostile_pipelines import job_name, pipelines
from hypothesis import HealthCheck, given, settings

from conveyor import Schedule, export_pipeline
from conveyor_dagster import DagsterOrchestratorConfig, compile_definitions, dagster_name, load_definitions, load_job

pytestmark = [pytest.mark.integration, pytest.mark.dagster]

DAGSTER = str(Path(sys.executable).parent / "dagster")


def validate(path: Path, home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [DAGSTER, "definitions", "validate", "-f", str(path)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "DAGSTER_HOME": str(home)},
        check=False,
    )


@pytest.mark.parametrize("name", ["renamed", "hostile", "scheduled"])
def test_exported_files_pass_dagsters_validation(
    name: str, dagster_stack: str, dagster_home: Path, tmp_path: Path, canary: Path
) -> None:
    pipe = {"renamed": tp.renamed, "hostile": tp.hostile, "scheduled": tp.naps}[name]
    schedule = Schedule(cron="*/15 * * * *") if name == "scheduled" else None
    [path] = export_pipeline(pipe, tmp_path / "code", stack=dagster_stack, schedule=schedule)
    done = validate(path, dagster_home)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Validation successful" in done.stderr + done.stdout
    assert not canary.exists()


def test_the_loaded_job_is_the_pipeline(dagster_stack: str, tmp_path: Path) -> None:
    import dagster as dg

    [path] = export_pipeline(tp.golden, tmp_path, stack=dagster_stack, parameters={"n": 3})
    job, defs = load_job(str(path)), load_definitions(str(path))
    dg.Definitions.validate_loadable(defs)
    assert job.name == "golden"
    ops = {node.name: node for node in job.graph.nodes}
    assert sorted(ops) == ["load", "square", "total", "total_2"]
    assert ops["square"].definition.retry_policy == dg.RetryPolicy(
        max_retries=2, delay=5.0, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.FULL
    )
    assert ops["square"].definition.tags["conveyor/step"] == "square"
    assert ops["total"].definition.pool == "crunch"
    structure = job.graph.dependency_structure
    deps = {name: sorted(out.node.name for out in structure.all_upstream_outputs_from_node(name)) for name in ops}
    assert deps == {"load": [], "square": ["load"], "total": ["square"], "total_2": ["square"]}
    resource = job.resource_defs["conveyor"]
    fields = resource.config_schema.config_type.fields
    assert {name: field.default_value for name, field in fields.items()} == {"n": 3, "label": "squares"}
    assert job.tags["owner"] == "data-team"
    sensors = {s.name for s in defs.sensors}
    assert sensors == {"golden_conveyor_failure", "golden_conveyor_canceled"}


@settings(max_examples=25, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(pipelines())
def test_hostile_files_load_in_dagster_with_every_value_in_place(case: tuple[Any, dict[str, Any]]) -> None:
    import dagster as dg

    dep, config = case
    source = compile_definitions(dep, DagsterOrchestratorConfig(**config)).source
    namespace: dict[str, Any] = {"__name__": "hostile_definitions"}
    exec(compile(source, "hostile_definitions.py", "exec"), namespace)
    defs, job = namespace["defs"], namespace["conveyor_job"]
    dg.Definitions.validate_loadable(defs)
    assert job.name == job_name(dep)
    assert job.description == (dep.pipeline.settings.extra["dagster"]["description"] or None)  # Dagster: "" is None
    by_op = {node.name: node.definition for node in job.graph.nodes}
    for step in dep.pipeline.steps:
        op = by_op[dagster_name(step.id)]
        own = step.settings.extra["dagster"]
        assert op.tags["conveyor/step"] == step.id
        assert op.description == (own.get("description", f"conveyor step {step.id!r} ({step.name})") or None)
        assert op.pool == own.get("pool")
    fields = job.resource_defs["conveyor"].config_schema.config_type.fields
    assert {name: field.default_value for name, field in fields.items()} == dep.pipeline.parameters
