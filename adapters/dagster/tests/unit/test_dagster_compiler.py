"""Compiling deployments into definitions files: golden files, determinism, settings, and what Dagster cannot do."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import dagster_test_pipelines as tp
import pytest
from definitions_file import Marker, argv, tables

from conveyor.exceptions import CapabilityError, ConfigError
from conveyor.ir import ComponentIR, Deployment, PipelineSettings, Schedule, StackIR
from conveyor.runtime import finish_command, step_command
from conveyor_dagster import DagsterOrchestratorConfig, compile_definitions, schedule_cron
from conveyor_testing.conformance import CASES, load_pipeline

GOLDEN = Path(__file__).parent / "golden"
IMAGE = "127.0.0.1:5000/conveyor/pipelines@sha256:" + "ab" * 32
STACK = StackIR(
    name="on_dagster",
    components={
        "orchestrator": ComponentIR(type="orchestrator", flavor="dagster", name="dg"),
        "artifact_store": ComponentIR(
            type="artifact_store", flavor="local", name="default", config={"path": "/srv/artifacts"}
        ),
    },
)
MACHINE = {"python": "/opt/conveyor/bin/python", "store_url": "sqlite:////srv/conveyor.db", "source_root": "/srv/code"}


def deployment(
    pipe: Any,
    *,
    images: dict[str, str] | None = None,
    schedule: Schedule | None = None,
    params: dict[str, Any] | None = None,
    **options: Any,
) -> Deployment:
    if options:
        pipe = pipe.with_options(**options)
    return Deployment(pipeline=pipe.trace(**(params or {})), stack=STACK, schedule=schedule, images=images or {})


def compile_source(dep: Deployment, **config: Any) -> str:
    return compile_definitions(dep, DagsterOrchestratorConfig(**config), **MACHINE).source


GOLDEN_CASES: dict[str, Any] = {
    **{
        f"conformance_{c.name}": (lambda c=c: compile_source(deployment(load_pipeline(c), params=c.params)))
        for c in CASES
    },
    "golden_python": lambda: compile_source(deployment(tp.golden)),
    "golden_docker": lambda: compile_source(
        deployment(tp.golden, images={"": IMAGE}),
        mode="docker",
        docker_mounts=["/srv:/srv", "/etc/conveyor:/etc/conveyor:ro"],
        start_method="forkserver",
    ),
    "golden_scheduled": lambda: compile_source(
        deployment(
            tp.golden,
            images={"": IMAGE},
            schedule=Schedule(
                cron="0 6 * * 1-5",
                start_date=datetime(2026, 1, 5, 6, 0, tzinfo=timezone(timedelta(hours=1))),
                end_date=datetime(2027, 1, 1),
            ),
            settings={
                "dagster": {
                    "job_name": "nightly_golden",
                    "description": "the nightly run",
                    "tags": {"dagster/max_runtime": "3600"},
                    "timezone": "Europe/Paris",
                }
            },
            steps={"total_2": {"settings": {"dagster": {"mode": "docker", "pool": "docker"}}}},
        ),
        tags={"team": "ml"},
        start_schedules=False,
        sensor_interval=5,
    ),
    "renamed_python": lambda: compile_source(deployment(tp.renamed), finish_sensor=False),
    "hostile_python": lambda: compile_source(deployment(tp.hostile)),
}


@pytest.mark.parametrize("name", sorted(GOLDEN_CASES))
def test_definitions_files_match_their_golden_files(name: str) -> None:
    source = GOLDEN_CASES[name]()
    path = GOLDEN / f"{name}.py"
    if os.environ.get("CONVEYOR_UPDATE_GOLDEN"):
        path.write_text(source)
    assert path.read_text() == source, f"{path.name} changed: rerun with CONVEYOR_UPDATE_GOLDEN=1 if that is intended"
    compile(source, str(path), "exec")


def test_compiling_twice_and_in_another_process_gives_the_same_bytes() -> None:
    first = GOLDEN_CASES["golden_scheduled"]()
    assert GOLDEN_CASES["golden_scheduled"]() == first
    script = (
        "import sys; sys.path.insert(0, sys.argv[1]); import test_dagster_compiler as t; "
        "sys.stdout.write(t.GOLDEN_CASES['golden_scheduled']())"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(Path(__file__).parent)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONHASHSEED": "12345"},
        check=True,
        cwd=Path(__file__).parent.parent,
        timeout=120,
    )
    assert out.stdout == first


def test_compiling_imports_neither_dagster_nor_docker() -> None:
    script = (
        "import sys; sys.path.insert(0, sys.argv[1]); import test_dagster_compiler as t\n"
        "for case in t.GOLDEN_CASES.values(): case()\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('dagster', 'docker'))\n"
        "assert not bad, bad\n"
    )
    subprocess.run(
        [sys.executable, "-c", script, str(Path(__file__).parent)],
        check=True,
        cwd=Path(__file__).parent.parent,
        timeout=120,
    )


def test_importing_the_flavor_loads_no_engine_and_no_template_machinery() -> None:
    script = (
        "import sys\n"
        "from conveyor.stack import flavors\n"
        "flavor = flavors.get('orchestrator', 'dagster')\n"
        "assert flavor.config_class.__name__ == 'DagsterOrchestratorConfig'\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('dagster', 'jinja2', 'docker'))\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)


# -- what the file says ----------------------------------------------------------------------
def test_every_op_runs_exactly_the_step_command_of_its_step() -> None:
    dep = deployment(tp.golden)
    t = tables(compile_source(dep))
    params = {"n": 7, "label": "x y"}
    for spec in t["STEPS"]:
        made = argv(t["COMMANDS"][spec["mode"]], {"run_id": "r-1", "step": spec["step"], "image": ""}, params)
        assert made == step_command(
            dep.id,
            spec["step"],
            run_key="dagster:r-1",
            orchestrator_run_id="r-1",
            params={"n": "7", "label": '"x y"'},
            python=MACHINE["python"],
        )
    finish = argv(t["FINISH"]["command"], {"run_id": "r-1"}, params)
    assert finish == finish_command(
        dep.id,
        run_key="dagster:r-1",
        orchestrator_run_id="r-1",
        params={"n": "7", "label": '"x y"'},
        python=MACHINE["python"],
    )


def test_docker_ops_run_the_step_command_in_the_image() -> None:
    dep = deployment(tp.golden, images={"": IMAGE})
    t = tables(compile_source(dep, mode="docker", container_python="/opt/venv/bin/python"))
    spec = t["STEPS"][0]
    assert spec["mode"] == "docker" and spec["image"] == IMAGE
    made = argv(t["COMMANDS"]["docker"], {"run_id": "r", "step": "load", "image": IMAGE}, t["PARAMETERS"])
    assert made == step_command(
        dep.id,
        "load",
        run_key="dagster:r",
        orchestrator_run_id="r",
        image=IMAGE,
        params={"n": "5", "label": '"squares"'},
        python="/opt/venv/bin/python",
    )
    assert t["FINISH"]["image"] == IMAGE
    assert t["DOCKER"]["network_mode"] == "host"
    assert t["CONTAINER_ENV"] == {"CONVEYOR_STORE_URL": MACHINE["store_url"]}  # the image brings the code


def test_dependencies_retries_tags_and_pools_follow_the_pipeline() -> None:
    t = tables(compile_source(deployment(tp.golden)))
    steps = {s["step"]: s for s in t["STEPS"]}
    assert list(steps) == ["load", "square", "total", "total_2"]
    assert steps["load"]["upstream"] == [] and steps["total_2"]["upstream"] == ["square"]
    assert steps["load"]["retry"] is None
    assert steps["square"]["retry"] == {"max_retries": 2, "delay": 5.0, "backoff": "EXPONENTIAL", "jitter": "FULL"}
    assert steps["square"]["tags"] == {"team": "ml", "conveyor/step": "square"}
    assert steps["square"]["environment"]["TOKEN"] == "{{api_token.value}}"  # a reference, never its value
    assert steps["square"]["secrets"] is True and steps["load"]["secrets"] is False
    assert steps["total"]["pool"] == "crunch" and steps["total"]["description"] == "adds the squares up"
    assert t["JOB"]["tags"]["owner"] == "data-team" and t["JOB"]["executor"] == {"max_concurrent": 4}
    assert t["PARAMETERS"] == {"n": 5, "label": "squares"}
    assert t["SCHEDULE"] is None


def test_names_dagster_refuses_become_distinct_names_and_stay_visible() -> None:
    t = tables(compile_source(deployment(tp.renamed)))
    assert t["JOB_NAME"].startswith("my_pipeline_v2_0_") and t["CONVEYOR_PIPELINE"] == "my pipeline v2.0"
    ops = {s["step"]: s["op"] for s in t["STEPS"]}
    assert ops["load data"].startswith("load_data_")
    assert ops["input"].startswith("input_")  # a word Dagster keeps for itself
    assert ops["naïve.step-1"].startswith("na_ve_step_1_")
    assert len(set(ops.values())) == 3
    for spec in t["STEPS"]:
        assert spec["tags"]["conveyor/step"] == spec["step"]
        assert repr(spec["step"]) in spec["description"]


def test_a_schedule_becomes_a_cron_schedule_with_its_window() -> None:
    t = tables(GOLDEN_CASES["golden_scheduled"]())
    assert t["JOB_NAME"] == "nightly_golden"
    assert t["SCHEDULE"] == {
        "cron": "0 6 * * 1-5",
        "timezone": "Europe/Paris",
        "start": datetime(2026, 1, 5, 5, 0, tzinfo=timezone.utc),
        "end": datetime(2027, 1, 1, tzinfo=timezone.utc),
        "status": "STOPPED",
    }
    assert t["JOB"]["tags"] == {
        "team": "ml",
        "dagster/max_runtime": "3600",
        "conveyor/deployment": t["CONVEYOR_DEPLOYMENT"],
    }
    assert t["FINISH"]["interval"] == 5
    modes = {s["step"]: (s["mode"], s["image"]) for s in t["STEPS"]}
    assert modes["total_2"] == ("docker", IMAGE) and modes["load"] == ("python", None)
    assert sorted(t["COMMANDS"]) == ["docker", "python"]


@pytest.mark.parametrize(
    ("seconds", "cron"),
    [
        (60, "* * * * *"),
        (300, "*/5 * * * *"),
        (1800, "*/30 * * * *"),
        (3600, "0 * * * *"),
        (6 * 3600, "0 */6 * * *"),
        (86400, "0 0 * * *"),
        (7 * 86400, "0 0 * * 0"),
    ],
)
def test_intervals_that_divide_an_hour_a_day_or_a_week_become_cron(seconds: int, cron: str) -> None:
    assert schedule_cron(Schedule(interval_seconds=seconds)) == cron


@pytest.mark.parametrize("seconds", [30, 90, 7 * 60, 5 * 3600, 2 * 86400, 0.5])
def test_other_intervals_are_one_line_errors(seconds: float) -> None:
    with pytest.raises(ConfigError, match="no cron expression") as info:
        schedule_cron(Schedule(interval_seconds=seconds))
    assert "\n" not in str(info.value)


def test_parameters_are_the_run_configs_defaults() -> None:
    t = tables(compile_source(deployment(tp.golden, params={"n": 9})))
    assert t["PARAMETERS"] == {"n": 9, "label": "squares"}
    assert Marker("param", "n") in [p for a in t["COMMANDS"]["python"] if isinstance(a, tuple) for p in a]


# -- what Dagster cannot do ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"steps": {"load": {"timeout": 60}}}, CapabilityError, "timeout"),
        ({"steps": {"load": {"resources": {"cpu": 2}}}}, CapabilityError, "cpu/memory/GPUs"),
        ({"steps": {"load": {"resources": {"gpu_count": 1}}}}, CapabilityError, "cpu/memory/GPUs"),
        ({"steps": {"load": {"step_operator": "docker"}}}, CapabilityError, "step operator"),
        ({"steps": {"load": {"settings": {"dagster": {"queue": "x"}}}}}, ConfigError, "queue"),
        ({"steps": {"load": {"settings": {"dagster": {"mode": "k8s"}}}}}, ConfigError, "mode"),
        ({"steps": {"load": {"settings": {"dagster": {"tags": {"a b": "x"}}}}}}, ConfigError, "tag key"),
        ({"steps": {"load": {"settings": {"dagster": {"tags": {"k": "a\x00b"}}}}}}, ConfigError, "NUL"),
        ({"steps": {"load": {"settings": {"dagster": {"pool": "big pool"}}}}}, ConfigError, "pool"),
        (
            {"steps": {"load": {"settings": {"dagster": {"pool": "a", "tags": {"dagster/concurrency_key": "b"}}}}}},
            ConfigError,
            "two pools",
        ),
        ({"settings": {"dagster": {"job_name": "my-job"}}}, ConfigError, "job_name"),
        ({"settings": {"dagster": {"job_name": "class"}}}, ConfigError, "job_name"),
        ({"settings": {"dagster": {"max_concurrent": 0}}}, ConfigError, "max_concurrent"),
        ({"steps": {"load": {"environment": {"A=B": "x"}}}}, ConfigError, "not a valid name"),
        ({"steps": {"load": {"environment": {"A": "x\x00y"}}}}, ConfigError, "NUL"),
    ],
)
def test_what_dagster_cannot_honour_fails_when_compiling(options: dict[str, Any], error: type, match: str) -> None:
    with pytest.raises(error, match=match) as info:
        compile_source(deployment(tp.golden, **options))
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("schedule", "settings", "match"),
    [
        (Schedule(cron="0 6 * *"), {}, "not a cron expression"),
        (Schedule(cron="@often"), {}, "not a cron expression"),
        (Schedule(cron="0 6 * * *", start_date=datetime(2026, 1, 1), catchup=True), {}, "catch up"),
        (Schedule(interval_seconds=45), {}, "no cron expression"),
        (Schedule(cron="@daily"), {"timezone": "Mars/Olympus"}, "time zone"),
    ],
)
def test_schedules_dagster_cannot_run_fail_when_compiling(
    schedule: Schedule, settings: dict[str, Any], match: str
) -> None:
    dep = deployment(tp.golden, schedule=schedule, settings={"dagster": settings})
    with pytest.raises(ConfigError, match=match) as info:
        compile_source(dep)
    assert "\n" not in str(info.value)


def test_docker_mode_without_an_image_fails_when_compiling() -> None:
    with pytest.raises(ConfigError, match="no image"):
        compile_source(deployment(tp.golden), mode="docker")
    assert tables(compile_source(deployment(tp.golden), mode="docker", image=IMAGE))["STEPS"][0]["image"] == IMAGE


def test_two_steps_that_would_be_one_op_are_refused() -> None:
    from conveyor_dagster import dagster_name

    clash = dagster_name("a b")  # a name a step may take literally
    dep = deployment(tp.renamed)
    steps = list(dep.pipeline.steps)
    steps[1] = steps[1].model_copy(update={"id": "a b"})
    steps[2] = steps[2].model_copy(update={"id": clash})
    broken = dep.model_copy(update={"pipeline": dep.pipeline.model_copy(update={"steps": tuple(steps)})})
    with pytest.raises(ConfigError, match="are both op"):
        compile_source(broken)


def test_a_job_never_shares_its_name_with_one_of_its_ops() -> None:
    dep = deployment(tp.renamed)
    steps = list(dep.pipeline.steps)
    steps[1] = steps[1].model_copy(update={"id": dep.pipeline.name})
    same = dep.model_copy(update={"pipeline": dep.pipeline.model_copy(update={"steps": tuple(steps)})})
    t = tables(compile_source(same))
    assert t["JOB_NAME"] == t["STEPS"][1]["op"] + "_job"
    named = same.model_copy(
        update={
            "pipeline": same.pipeline.model_copy(
                update={"settings": PipelineSettings(extra={"dagster": {"job_name": t["STEPS"][1]["op"]}})}
            )
        }
    )
    with pytest.raises(ConfigError, match="Dagster names jobs and ops alike"):
        compile_source(named)


def test_a_store_url_with_a_password_is_refused_when_registering() -> None:
    from conveyor_dagster import DagsterOrchestratorFlavor

    with pytest.raises(ConfigError, match="password") as info:
        DagsterOrchestratorFlavor().validate_config(
            {"store_url": "postgresql://user:hunter2@db/conveyor"}, component="dg"
        )
    assert "hunter2" not in str(info.value)
