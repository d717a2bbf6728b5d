"""compile_flow: a pure function of the deployment, with Prefect's own checks at compile time."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest

from conveyor.exceptions import CapabilityError, ConfigError
from conveyor.ir import (
    ArtifactInput,
    ComponentIR,
    Deployment,
    OutputSpec,
    ParameterInput,
    PipelineIR,
    Schedule,
    StackIR,
    StepIR,
    StepSettings,
)
from conveyor_prefect import PrefectOrchestratorConfig, compile_flow
from conveyor_testing import assert_golden

GOLDEN = Path(__file__).parent / "golden"


def _deployment(schedule: Schedule | None = None, **step_settings: object) -> Deployment:
    steps = (
        StepIR(
            id="load",
            name="load",
            source="demo:load",
            code_hash="a" * 16,
            inputs={"n": ParameterInput(value=3, pipeline_parameter="n")},
            outputs={"output": OutputSpec(type="builtins.int")},
        ),
        StepIR(
            id="train",
            name="train",
            source="demo:train",
            code_hash="b" * 16,
            inputs={"x": ArtifactInput(step="load", output="output")},
            outputs={"output": OutputSpec(type="builtins.int")},
            settings=StepSettings(retries=2, retry_delay=1.5, timeout=30, **step_settings),
        ),
        StepIR(
            id="train_2",
            name="train",
            source="demo:train",
            code_hash="b" * 16,
            inputs={"x": ArtifactInput(step="load", output="output")},
            outputs={"output": OutputSpec(type="builtins.int")},
            settings=StepSettings(environment={"MODE": "fast"}),
        ),
        StepIR(id="report", name="report", source="demo:report", code_hash="c" * 16, after=("train", "train_2")),
    )
    stack = StackIR(
        name="on_prefect",
        components={
            "orchestrator": ComponentIR(type="orchestrator", flavor="prefect", name="pf", config={}),
            "artifact_store": ComponentIR(
                type="artifact_store", flavor="local", name="default", config={"path": "/data"}
            ),
        },
    )
    return Deployment(
        pipeline=PipelineIR(name="demo", parameters={"n": 3}, steps=steps), stack=stack, schedule=schedule
    )


def test_spec_matches_golden_file() -> None:
    spec = compile_flow(
        _deployment(Schedule(cron="0 * * * *", start_date=datetime(2026, 1, 1))),
        PrefectOrchestratorConfig(tags=["team-a"]),
    )
    text = json.dumps(spec.model_dump(mode="json"), indent=2, sort_keys=True) + "\n"
    assert_golden(GOLDEN / "demo.prefect.json", text)


def test_one_task_per_step_with_its_upstream_retries_and_timeout() -> None:
    spec = compile_flow(_deployment(), PrefectOrchestratorConfig())
    tasks = {t.step_id: t for t in spec.tasks}
    assert spec.flow_name == "demo"
    assert [t.step_id for t in spec.tasks] == ["load", "train", "train_2", "report"]
    assert tasks["train_2"].name == "train"
    assert tasks["report"].upstream == ("train", "train_2")
    assert (tasks["train"].retries, tasks["train"].retry_delay_seconds, tasks["train"].timeout_seconds) == (2, 1.5, 30)
    # a thread can be neither stopped nor given its own environment
    assert (tasks["load"].mode, tasks["train"].mode, tasks["train_2"].mode) == (
        "in_process",
        "subprocess",
        "subprocess",
    )
    assert spec.max_workers == 4
    assert spec.schedule is None


def test_step_mode_and_workers_come_from_the_config() -> None:
    spec = compile_flow(_deployment(), PrefectOrchestratorConfig(step_mode="container", max_workers=2))
    assert {t.mode for t in spec.tasks} == {"container"}
    assert spec.max_workers == 2


def test_same_input_same_spec() -> None:
    config = PrefectOrchestratorConfig()
    assert compile_flow(_deployment(), config) == compile_flow(_deployment(), config)


@pytest.mark.parametrize("cron", ["61 * * * *", "every hour", "* * *", "H * * * *"])
def test_cron_that_prefect_rejects_is_a_one_line_config_error(cron: str) -> None:
    with pytest.raises(ConfigError) as err:
        compile_flow(_deployment(Schedule(cron=cron)), PrefectOrchestratorConfig())
    assert cron in str(err.value) and "\n" not in str(err.value)
    assert err.value.hint is not None and "0 * * * *" in err.value.hint


def test_interval_schedule_keeps_its_start() -> None:
    spec = compile_flow(
        _deployment(Schedule(interval_seconds=90, start_date=datetime(2026, 3, 1, 12))), PrefectOrchestratorConfig()
    )
    assert spec.schedule == {"interval": 90.0, "anchor_date": "2026-03-01T12:00:00+00:00"}


@pytest.mark.parametrize(
    "schedule", [Schedule(cron="0 * * * *", end_date=datetime(2027, 1, 1)), Schedule(cron="0 * * * *", catchup=True)]
)
def test_schedule_prefect_cannot_honour_is_a_capability_error(schedule: Schedule) -> None:
    with pytest.raises(CapabilityError):
        compile_flow(_deployment(schedule), PrefectOrchestratorConfig())


def test_prefect_step_settings_are_checked() -> None:
    spec = compile_flow(_deployment(extra={"prefect": {"tags": ["gpu-queue"]}}), PrefectOrchestratorConfig())
    assert spec.tasks[1].tags == ("gpu-queue",)
    with pytest.raises(ConfigError, match="unknown prefect setting 'pool'"):
        compile_flow(_deployment(extra={"prefect": {"pool": "x"}}), PrefectOrchestratorConfig())
    with pytest.raises(ConfigError, match="list of strings"):
        compile_flow(_deployment(extra={"prefect": {"tags": "x"}}), PrefectOrchestratorConfig())


def test_names_prefect_refuses_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="deployment name"):
        compile_flow(_deployment(), PrefectOrchestratorConfig(deployment_name="a/b"))
