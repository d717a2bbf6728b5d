"""No name, tag or setting changes meaning on its way into Prefect.

Hypothesis builds deployments whose names, parameters, tags and settings hold
line breaks, quotes, braces, template and shell syntax. The compiled flow
spec must round-trip through its exported JSON to the same values, which are
the IR's; names Prefect refuses must be one-line errors; and the names
Prefect formats with a run's parameters (task and flow run names) must come
out of Prefect's own formatting unchanged.
"""

from __future__ import annotations

import json
from pathlib import PurePosixPath
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prefect._internal.engine import resolve_custom_flow_run_name, resolve_custom_task_run_name

from conveyor.exceptions import ConfigError
from conveyor.ir import (
    ComponentIR,
    Deployment,
    ParameterInput,
    PipelineIR,
    Schedule,
    StackIR,
    StepIR,
    StepSettings,
    canonical_json,
)
from conveyor_prefect import FlowSpec, PrefectOrchestratorConfig, TaskSpec, compile_flow
from conveyor_prefect._compile import literal_run_name
from conveyor_prefect._flow import _prefect_task, pipeline_flow
from conveyor_testing.strategies import hostile_text, names

pytestmark = pytest.mark.filterwarnings(
    # Prefect's client threads that earlier tests of the session leave behind draw from the global
    # random generator (retry jitter) while hypothesis draws an example; hypothesis blames the strategy.
    "ignore:Do not use the `random` module inside strategies:hypothesis.errors.HypothesisDeprecationWarning"
)
SETTINGS = settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
BANNED = "/%&><"

text = hostile_text()
any_name = st.one_of(names(), text.filter(bool))
# Names inside the IR follow core's naming rule (the IR refuses any other).
ir_name = names()
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False), text),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(text, inner, max_size=3)),
    max_leaves=6,
)


@st.composite
def deployments(draw: Any) -> tuple[Deployment, PrefectOrchestratorConfig]:
    """A deployment and a Prefect config with hostile text wherever they take text."""
    parameters = draw(st.dictionaries(ir_name, json_values, max_size=3))
    step_ids = draw(st.lists(ir_name, min_size=1, max_size=4, unique=True))
    steps = []
    for i, sid in enumerate(step_ids):
        param = draw(st.sampled_from([None, *parameters]))
        steps.append(
            StepIR(
                id=sid,
                name=draw(ir_name),
                source=f"pipe:{draw(text)}",
                code_hash="0" * 16,
                inputs={}
                if param is None
                else {"x": ParameterInput(value=parameters[param], pipeline_parameter=param)},
                after=tuple(step_ids[:i][-1:]),
                settings=StepSettings(
                    environment=draw(st.dictionaries(text, text, max_size=2)),
                    extra={"prefect": {"tags": draw(st.lists(text, max_size=3))}} if draw(st.booleans()) else {},
                ),
            )
        )
    pipeline = PipelineIR(name=draw(ir_name), parameters=parameters, steps=tuple(steps))
    stack = StackIR(
        name=draw(text),
        components={"orchestrator": ComponentIR(type="orchestrator", flavor="prefect", name=draw(text))},
    )
    schedule = draw(st.none() | st.builds(Schedule, cron=st.sampled_from(["0 * * * *", "*/5 1-3 * * 1", "@daily"])))
    config = PrefectOrchestratorConfig(
        deployment_name=draw(st.none() | any_name),
        tags=draw(st.lists(text, max_size=3)),
        work_pool=draw(text),
    )
    return Deployment(pipeline=pipeline, stack=stack, schedule=schedule), config


@SETTINGS
@given(deployments())
def test_the_flow_spec_round_trips_to_the_irs_values(case: tuple[Deployment, PrefectOrchestratorConfig]) -> None:
    deployment, config = case
    pipeline = deployment.pipeline
    deployment_name = config.deployment_name or pipeline.name
    refused = [c for c in pipeline.name + deployment_name if c in BANNED]
    try:
        spec = compile_flow(deployment, config)
    except ConfigError as exc:  # Prefect refuses these characters in names
        assert refused and "\n" not in str(exc).replace(repr(pipeline.name), "").replace(repr(deployment_name), "")
        return
    assert not refused
    # What `conveyor pipeline export` writes, read back.
    exported = canonical_json(spec.model_dump(mode="json"))
    assert FlowSpec.model_validate(json.loads(exported)) == spec
    assert spec.flow_name == pipeline.name
    assert spec.deployment_name == deployment_name
    assert spec.deployment_id == deployment.id
    assert spec.tags == ("conveyor", f"conveyor-pipeline:{pipeline.name}", *sorted(set(config.tags)))
    assert spec.work_pool == config.work_pool
    assert spec.schedule == (None if deployment.schedule is None else {"cron": deployment.schedule.cron})
    assert [(t.step_id, t.name, t.upstream, t.tags) for t in spec.tasks] == [
        (s.id, s.name, s.upstream(), tuple(s.settings.extra.get("prefect", {}).get("tags", ()))) for s in pipeline.steps
    ]
    # The exported file is one file in the output folder, whatever the name.
    assert PurePosixPath(f"{spec.flow_name}.prefect.json").name == f"{spec.flow_name}.prefect.json"


@SETTINGS
@given(any_name, st.dictionaries(st.from_regex(r"\A[a-z_]{1,8}\Z"), text, max_size=3))
def test_run_names_come_out_of_prefects_formatting_unchanged(name: str, parameters: dict[str, Any]) -> None:
    assert literal_run_name(name).format(**parameters) == name


@SETTINGS
@given(any_name, text)
def test_task_runs_are_named_by_their_step_id(step_id: str, run_id: str) -> None:
    task = _prefect_task(TaskSpec(step_id=step_id, name=step_id))
    assert resolve_custom_task_run_name(task, {"conveyor_run_id": run_id, "step_id": step_id}) == step_id


@SETTINGS
@given(any_name.filter(lambda n: not any(c in BANNED for c in n)), any_name, text)
def test_flow_runs_are_named_by_the_conveyor_run(pipeline: str, run_name: str, deployment_id: str) -> None:
    spec = FlowSpec(
        flow_name=pipeline,
        deployment_id=deployment_id,
        tags=(),
        max_workers=1,
        tasks=(),
        deployment_name=pipeline,
        work_pool="conveyor",
        work_pool_type="process",
    )
    flow = pipeline_flow(spec, run_name)
    assert flow.name == pipeline
    parameters = {"deployment_id": deployment_id, "parameters": None, "conveyor_run_id": "r", "image": None}
    assert resolve_custom_flow_run_name(flow, parameters) == run_name
