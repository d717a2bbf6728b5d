"""The IR is plain data: canonical JSON, stable round trips, content ids."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from conveyor.ir import (
    ArtifactInput,
    ComponentIR,
    Deployment,
    ModelInput,
    ModelIR,
    ParameterInput,
    PipelineIR,
    Schedule,
    StackIR,
    StepIR,
    StepSettings,
    load_deployment,
)


def _deployment() -> Deployment:
    steps = (
        StepIR(
            id="load",
            name="load",
            source="m:load",
            code_hash="a",
            inputs={"n": ParameterInput(value=3, pipeline_parameter="n")},
            outputs={"output": {"type": "builtins.int"}},
        ),
        StepIR(
            id="use",
            name="use",
            source="m:use",
            code_hash="b",
            inputs={"x": ArtifactInput(step="load", output="output")},
        ),
        StepIR(
            id="score",
            name="score",
            source="m:score",
            code_hash="c",
            inputs={"model": ModelInput(model="churn", version="production", pipeline_parameter="ref")},
            settings={"model": ModelIR(name="scorer", tags=("a", "b"))},
        ),
    )
    return Deployment(
        pipeline=PipelineIR(
            name="p",
            parameters={"n": 3, "ref": "churn@production"},
            steps=steps,
            model=ModelIR(name="churn", version="2026-q4", description="d", license="MIT"),
        ),
        stack=StackIR(
            name="s", components={"orchestrator": ComponentIR(type="orchestrator", flavor="local", name="o")}
        ),
    )


def test_json_round_trip_is_stable() -> None:
    dep = _deployment()
    text = dep.canonical_json()
    again = load_deployment(text)
    assert again == dep
    assert again.canonical_json() == text
    assert json.loads(text) == json.loads(dep.model_dump_json())


def test_canonical_json_sorts_keys_and_id_follows_content() -> None:
    dep = _deployment()
    data = json.loads(dep.canonical_json())
    assert list(data) == sorted(data)
    first = dep.id  # computed once per object, so a copy must not inherit it
    changed = dep.model_copy(update={"run_name": "other"})
    assert changed.id != first
    assert changed.id == Deployment.model_validate(changed.model_dump()).id
    assert dep.model_copy(deep=True).id == first
    assert _deployment().id == dep.id == first
    assert "id" not in dep.model_dump() and dep == _deployment()


def test_models_are_frozen_and_reject_unknown_fields() -> None:
    dep = _deployment()
    with pytest.raises(ValidationError):
        dep.pipeline.name = "x"  # type: ignore[misc]
    with pytest.raises(ValidationError):
        StepIR(id="a", name="a", source="m:a", code_hash="h", bogus=1)  # type: ignore[call-arg]


def test_steps_must_come_after_their_upstream() -> None:
    late = StepIR(
        id="use", name="use", source="m:use", code_hash="b", inputs={"x": ArtifactInput(step="load", output="output")}
    )
    with pytest.raises(ValidationError, match="does not come before"):
        PipelineIR(name="p", steps=(late,))


def test_other_ir_version_is_refused_with_a_hint() -> None:
    data = json.loads(_deployment().canonical_json())
    data["ir_version"] = 99
    with pytest.raises(ValueError, match="install the same conveyor version"):
        load_deployment(data)


def test_schedule_needs_exactly_one_trigger() -> None:
    assert Schedule(cron="0 * * * *").cron == "0 * * * *"
    with pytest.raises(ValidationError):
        Schedule()
    with pytest.raises(ValidationError):
        Schedule(cron="* * * * *", interval_seconds=5)


def test_downstream_and_upstream() -> None:
    pipe = _deployment().pipeline
    assert pipe.step("use").upstream() == ("load",)
    assert pipe.downstream() == {"load": ("use",), "use": (), "score": ()}
    assert pipe.step("score").upstream() == ()  # a model version is no step of this pipeline


def test_a_step_shares_the_runs_version_unless_its_model_is_its_own() -> None:
    pipe = _deployment().pipeline
    assert pipe.model_for(pipe.step("load")) == (pipe.model, "")
    assert pipe.model_for(pipe.step("score")) == (ModelIR(name="scorer", tags=("a", "b")), "score")
    shared = StepSettings(model=ModelIR(name="churn", version="2026-q4", description="said again"))
    same = pipe.step("score").model_copy(update={"settings": shared})
    assert pipe.model_for(same) == (pipe.model, "")
    assert PipelineIR(name="q", steps=(pipe.step("load"),)).model_for(pipe.step("load")) is None


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"name": "a/b"}, "contains '/'"),
        ({"name": "m", "version": "0"}, "versions are numbered from 1"),
        ({"name": "m", "version": "99999999999"}, "versions are numbered from 1 to 2147483647"),
        ({"name": "m", "tags": ("",)}, "tag '' is empty"),
    ],
)
def test_malformed_models_are_refused(fields: dict, problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        ModelIR(**fields)


def test_version_references_have_one_spelling() -> None:
    assert ModelIR(name="m", version="007").version == "7"
    assert ModelInput(model="m").reference == "m@latest"
    assert ModelInput(model="m", version="prod", artifact="model").reference == "m@prod/model"
