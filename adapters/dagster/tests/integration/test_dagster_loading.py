"""Exported files load in Dagster with no errors, and hold what the pipeline says; hostile values stay data."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import dagster_test_pipelines as tp
import pytest
from hostile_pipelines import job_name, pipelines
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conveyor import Schedule, export_pipeline
from conveyor.ir import Deployment, PipelineIR, StackIR, StepIR
from conveyor.runtime import step_command
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


# -- a run's config as a step command --------------------------------------------------------------
@functools.cache
def _loaded_file() -> dict[str, Any]:
    """The namespace of a definitions file whose pipeline has one parameter, ``p``, as Dagster loads it."""
    step = StepIR(id="a", name="a", source="m:a", code_hash="0")
    dep = Deployment(
        pipeline=PipelineIR(name="p", steps=(step,), parameters={"p": 1}), stack=StackIR(name="s", components={})
    )
    source = compile_definitions(dep, DagsterOrchestratorConfig(python="py")).source
    namespace: dict[str, Any] = {"__name__": "config_definitions"}
    exec(compile(source, "config_definitions.py", "exec"), namespace)
    return namespace


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()  # lone surrogates too: YAML's "\ud800" reads as one
    | st.sampled_from(["--store-url=x", "-p", "a=b", "$(id)", "\x00", "\n--param", "\u2028"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None, database=None)
@given(json_values)
def test_any_value_of_a_runs_config_reaches_the_step_command_as_itself(value: Any) -> None:
    """Whatever a run's config holds for a parameter is one ASCII argument that reads back as that value."""
    ns = _loaded_file()
    values = {"run_id": "r", "step": "a", "image": ""}
    argv = ns["_argv"](ns["COMMANDS"]["python"], values, {"p": value})
    assert all(arg.isascii() and "\x00" not in arg for arg in argv)  # any OS takes it as given
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    assert argv == step_command(
        ns["CONVEYOR_DEPLOYMENT"], "a", run_key="dagster:r", orchestrator_run_id="r", params={"p": text}, python="py"
    )
    assert json.loads(argv[argv.index("--param") + 1].removeprefix("p=")) == value


@pytest.mark.parametrize("value", [b"seven", {1, 2}, object(), complex(1, 2)])
def test_a_value_no_json_carries_is_refused_by_name(value: Any) -> None:
    ns = _loaded_file()
    with pytest.raises(ns["NotJson"], match=r"^parameter 'p' in the run's config is a \w+, not a JSON value"):
        ns["_argv"](ns["COMMANDS"]["python"], {"run_id": "r", "step": "a", "image": ""}, {"p": value})


_line = st.text(st.characters(exclude_categories=("Cs",)))


@settings(max_examples=300, deadline=None, database=None)
@given(
    st.lists(st.one_of(_line, _line.map("conveyor: ".__add__)), max_size=6),
    st.lists(st.integers(min_value=0, max_value=10_000), max_size=8),
)
def test_the_step_commands_last_line_is_found_however_its_output_is_cut(lines: list[str], cuts: list[int]) -> None:
    """The op's failure names the step command's one-line error (the last line, if the step command said it),
    whatever pieces the pipe hands over."""
    ns = _loaded_file()
    data = "\n".join(lines).encode("utf-8")
    said = ns["_Said"]()
    at = 0
    for cut in sorted(c % (len(data) + 1) for c in cuts):
        said.feed(data[at:cut])
        at = cut
    said.feed(data[at:], final=True)
    said_lines = [line.strip() for line in "\n".join(lines).split("\n") if line.strip()]
    last = said_lines[-1] if said_lines else None
    assert said.line == (last if last is not None and last.startswith("conveyor: ") else None)
