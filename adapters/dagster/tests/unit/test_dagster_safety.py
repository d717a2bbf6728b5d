"""No name, parameter or setting can make a definitions file run code when Dagster loads it.

Hypothesis writes pipelines whose names, parameters, settings, environment
values and paths hold quotes, line breaks, templates, shell and Python. Every
compiled file is checked without Dagster: its code is the template's, word
for word, whatever the pipeline; its tables hold only data (constants and the
command markers); and every value arrives where it belongs, unchanged.
(``tests/integration/test_dagster_loading.py`` loads such files with Dagster.)
"""

from __future__ import annotations

from typing import Any

import pytest
from definitions_file import argv, code_outside_tables, tables
from hostile_pipelines import job_name, pipelines
from hypothesis import HealthCheck, given, settings

from conveyor.exceptions import ConfigError
from conveyor.ir import Deployment, PipelineIR, StackIR, StepIR, StepSettings
from conveyor.runtime import step_command
from conveyor_dagster import DagsterOrchestratorConfig, compile_definitions, dagster_name

REFERENCE = None


def reference_code() -> tuple[str, str]:
    global REFERENCE
    if REFERENCE is None:
        step = StepIR(id="a", name="a", source="m:a", code_hash="0")
        dep = Deployment(pipeline=PipelineIR(name="p", steps=(step,)), stack=StackIR(name="s", components={}))
        REFERENCE = code_outside_tables(compile_definitions(dep, DagsterOrchestratorConfig()).source)
    return REFERENCE


@settings(max_examples=250, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(pipelines())
def test_user_values_never_become_code(case: tuple[Deployment, dict[str, Any]]) -> None:
    dep, config = case
    source = compile_definitions(dep, DagsterOrchestratorConfig(**config)).source
    assert code_outside_tables(source) == reference_code()
    t = tables(source)  # fails on anything in a table but data
    assert t["CONVEYOR_PIPELINE"] == dep.pipeline.name and t["CONVEYOR_DEPLOYMENT"] == dep.id
    assert t["JOB_NAME"] == job_name(dep)
    assert t["JOB"]["description"] == dep.pipeline.settings.extra["dagster"]["description"]
    assert t["JOB"]["tags"] == {
        **config["tags"],
        **dep.pipeline.settings.extra["dagster"]["tags"],
        "conveyor/deployment": dep.id,
    }
    assert t["PARAMETERS"] == dep.pipeline.parameters
    assert [s["step"] for s in t["STEPS"]] == [s.id for s in dep.pipeline.steps]
    for step, spec in zip(dep.pipeline.steps, t["STEPS"], strict=True):
        own = step.settings.extra["dagster"]
        assert spec["op"] == dagster_name(step.id)
        assert spec["upstream"] == list(step.upstream())
        assert spec["description"] == own.get("description", f"conveyor step {step.id!r} ({step.name})")
        assert spec["tags"] == {**own.get("tags", {}), "conveyor/step": step.id}
        assert spec["pool"] == own.get("pool")
        assert spec["environment"] == step.settings.environment
        assert spec["mode"] == config["mode"]
        assert spec["image"] == (dep.images[""] if config["mode"] == "docker" else None)
        values = {"run_id": "r", "step": step.id, "image": spec["image"] or ""}
        made = argv(t["COMMANDS"][spec["mode"]], values, dep.pipeline.parameters)
        python = config["python"] if config["mode"] == "python" else config["container_python"]
        assert made == step_command(
            dep.id,
            step.id,
            run_key="dagster:r",
            orchestrator_run_id="r",
            image=spec["image"],
            params={k: _json(v) for k, v in dep.pipeline.parameters.items()},
            python=python,
        )
    env = t["PROCESS_ENV"] if config["mode"] == "python" else t["CONTAINER_ENV"]
    assert env["CONVEYOR_STORE_URL"] == config["store_url"]
    assert t["DOCKER"]["url"] == config["docker_url"]


def _json(value: Any) -> str:
    import json

    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


@pytest.mark.parametrize(
    "where",
    ["environment", "python", "store_url", "source_root", "image"],
)
def test_a_nul_that_would_reach_a_process_is_refused_not_written(where: str) -> None:
    step = StepIR(
        id="a",
        name="a",
        source="m:a",
        code_hash="0",
        settings=StepSettings(environment={"X": "a\x00b"} if where == "environment" else {}),
    )
    dep = Deployment(
        pipeline=PipelineIR(name="p", steps=(step,)),
        stack=StackIR(name="s", components={}),
        images={"": "img\x00"} if where == "image" else {"": "img"},
    )
    config = {"mode": "docker"} if where == "image" else {where: "a\x00b"} if where != "environment" else {}
    if where == "store_url":
        config = {"store_url": "sqlite:///a\x00b"}
    with pytest.raises(ConfigError, match="NUL"):
        compile_definitions(dep, DagsterOrchestratorConfig(**config))
