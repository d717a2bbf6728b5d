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
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conveyor.exceptions import ConfigError
from conveyor.ir import ComponentIR, Deployment, PipelineIR, PipelineSettings, StackIR, StepIR, StepSettings
from conveyor.runtime import step_command
from conveyor_dagster import DagsterOrchestratorConfig, compile_definitions, dagster_name
from conveyor_testing.strategies import hostile_text, names

text = hostile_text()
no_nul = text.map(lambda t: t.replace("\x00", ""))
tag_key = st.from_regex(r"\A([a-z0-9_.-]{1,10}/)?[A-Za-z0-9_.-]{1,10}\Z")


@st.composite
def pipelines(draw: Any) -> tuple[Deployment, dict[str, Any]]:
    step_ids = draw(st.lists(names(), min_size=1, max_size=4, unique_by=dagster_name))
    mode = draw(st.sampled_from(["python", "docker"]))
    steps = []
    for i, sid in enumerate(step_ids):
        dagster = draw(
            st.fixed_dictionaries(
                {},
                optional={
                    "description": text,
                    "tags": st.dictionaries(tag_key, no_nul, max_size=2),
                    "pool": no_nul.filter(bool),
                },
            )
        )
        steps.append(
            StepIR(
                id=sid,
                name=draw(names()),
                source=f"m:{draw(text)}",
                code_hash="0",
                after=tuple(step_ids[:i][-1:]),
                settings=StepSettings(
                    retries=draw(st.integers(0, 3)),
                    environment=draw(st.dictionaries(st.text("ABCXYZ_", min_size=1, max_size=5), no_nul, max_size=2)),
                    extra={"dagster": dagster, "other": {draw(text): draw(text)}},
                ),
            )
        )
    pipeline = PipelineIR(
        name=draw(names()),
        source=draw(text),
        parameters=draw(st.dictionaries(names(), st.one_of(text, st.lists(text, max_size=2)), max_size=3)),
        steps=tuple(steps),
        settings=PipelineSettings(
            extra={"dagster": {"description": draw(text), "tags": draw(st.dictionaries(tag_key, no_nul, max_size=2))}}
        ),
    )
    stack = StackIR(
        name=draw(names()),
        components={
            "orchestrator": ComponentIR(type="orchestrator", flavor="dagster", name=draw(names())),
            "artifact_store": ComponentIR(
                type="artifact_store", flavor="local", name=draw(names()), config={"path": draw(text)}
            ),
        },
    )
    images = {"": draw(no_nul.filter(bool))} if mode == "docker" else {}
    config = {
        "mode": mode,
        "python": draw(no_nul.filter(bool)),
        "store_url": "sqlite:///" + draw(no_nul),
        "source_root": draw(no_nul.filter(bool)),
        "container_python": draw(no_nul.filter(bool)),
        "docker_url": draw(text),
        "tags": draw(st.dictionaries(tag_key, no_nul, max_size=2)),
        "docker_mounts": [f"/{draw(st.text('ab/', min_size=1))}:/{draw(st.text('cd', min_size=1))}"],
    }
    return Deployment(pipeline=pipeline, stack=stack, images=images), config


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
    assert t["JOB_NAME"] == dagster_name(dep.pipeline.name)
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

    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


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
