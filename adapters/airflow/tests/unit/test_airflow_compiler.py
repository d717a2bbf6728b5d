"""Compiling deployments into DAG files: golden files, determinism, settings, and what Airflow cannot do."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import airflow_test_pipelines as tp
import pytest

from conveyor.exceptions import CapabilityError, ConfigError
from conveyor.ir import ComponentIR, Deployment, PipelineIR, Schedule, StackIR, StepIR
from conveyor_airflow import AirflowOrchestratorConfig, compile_dag
from conveyor_testing import assert_golden

GOLDEN = Path(__file__).parent / "golden"
IMAGE = "127.0.0.1:5000/conveyor/pipelines@sha256:" + "ab" * 32
STACK = StackIR(
    name="on_airflow",
    components={
        "orchestrator": ComponentIR(type="orchestrator", flavor="airflow", name="af"),
        "artifact_store": ComponentIR(
            type="artifact_store", flavor="local", name="default", config={"path": "/srv/artifacts"}
        ),
    },
)
MACHINE = {"python": "/opt/conveyor/bin/python", "store_url": "sqlite:////srv/conveyor.db", "source_root": "/srv/code"}


def deployment(
    pipe: Any, *, images: dict[str, str] | None = None, schedule: Schedule | None = None, **options: Any
) -> Deployment:
    if options:
        pipe = pipe.with_options(**options)
    return Deployment(pipeline=pipe.trace(), stack=STACK, schedule=schedule, images=images or {})


def compile_source(dep: Deployment, **config: Any) -> str:
    return compile_dag(dep, AirflowOrchestratorConfig(**config), **MACHINE).source


GOLDEN_CASES: dict[str, Any] = {
    "golden_python": lambda: compile_source(deployment(tp.golden)),
    "containers_docker": lambda: compile_source(
        deployment(tp.containers, images={"": IMAGE}, steps={"tune": {"resources": {"gpu_count": 1}}}),
        operator="docker",
        docker_mounts=["/srv:/srv", "/etc/conveyor:/etc/conveyor:ro"],
    ),
    "containers_kubernetes": lambda: compile_source(
        deployment(
            tp.containers,
            images={"": IMAGE},
            steps={
                "train": {
                    "settings": {
                        "airflow": {
                            "node_selector": {"pool": "highmem"},
                            "labels": {"team": "ml"},
                            "annotations": {"note": "{{ ds }}"},
                            "service_account_name": "runner",
                            "image_pull_policy": "IfNotPresent",
                        }
                    }
                }
            },
        ),
        operator="kubernetes_pod",
        namespace="pipelines",
        gpu_type_label="cloud.google.com/gke-accelerator",
        in_cluster=True,
    ),
    "golden_scheduled": lambda: compile_source(
        deployment(
            tp.golden,
            images={"": IMAGE},
            schedule=Schedule(
                cron="0 6 * * 1-5",
                start_date=datetime(2026, 1, 5, 6, 0, tzinfo=timezone(timedelta(hours=1))),
                end_date=datetime(2027, 1, 1),
                catchup=True,
            ),
            settings={
                "airflow": {
                    "dag_id": "nightly-golden",
                    "tags": ["team-a"],
                    "description": "the nightly run",
                    "max_active_runs": 1,
                    "dagrun_timeout": 3600,
                    "owner": "data",
                    "retry_exponential_backoff": 2.0,
                    "max_retry_delay": 600,
                    "is_paused_upon_creation": False,
                }
            },
            steps={
                "total_2": {
                    "settings": {"airflow": {"operator": "docker", "pool": "docker", "executor": "LocalExecutor"}}
                }
            },
        ),
    ),
    "hostile_python": lambda: compile_source(deployment(tp.hostile)),
}


@pytest.mark.parametrize("name", sorted(GOLDEN_CASES))
def test_dag_files_match_their_golden_files(name: str) -> None:
    source = GOLDEN_CASES[name]()
    path = GOLDEN / f"{name}.py"
    assert_golden(path, source)
    compile(source, str(path), "exec")


def test_compiling_twice_and_in_another_process_gives_the_same_bytes() -> None:
    first = GOLDEN_CASES["golden_scheduled"]()
    assert GOLDEN_CASES["golden_scheduled"]() == first
    script = (
        "import sys; sys.path.insert(0, sys.argv[1]); import test_airflow_compiler as t; "
        "sys.stdout.write(t.GOLDEN_CASES['golden_scheduled']())"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", script, str(Path(__file__).parent)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        cwd=Path(__file__).parent.parent,
        timeout=120,
    )
    assert out.stdout == first


def test_compiling_imports_neither_airflow_nor_docker_nor_kubernetes() -> None:
    script = (
        "import sys; sys.path.insert(0, sys.argv[1]); import test_airflow_compiler as t\n"
        "for case in t.GOLDEN_CASES.values(): case()\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('airflow', 'docker', 'kubernetes'))\n"
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
        "flavor = flavors.get('orchestrator', 'airflow')\n"
        "assert flavor.config_class.__name__ == 'AirflowOrchestratorConfig'\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('airflow', 'jinja2', 'httpx', 'docker', 'kubernetes'))\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)


def _calls(source: str) -> dict[str, list[dict[str, Any]]]:
    """``{callee: [keyword arguments as literals]}`` of the operator and DAG calls of a DAG file."""
    out: dict[str, list[dict[str, Any]]] = {}
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id.endswith(("Operator", "DAG"))
        ):
            kwargs = {}
            for kw in node.keywords:
                try:
                    kwargs[kw.arg] = ast.literal_eval(kw.value)
                except ValueError:
                    kwargs[kw.arg] = ast.unparse(kw.value)
            out.setdefault(node.func.id, []).append(kwargs)
    return out


def test_core_settings_become_operator_arguments() -> None:
    calls = _calls(compile_source(deployment(tp.golden)))
    dag = calls["DAG"][0]
    assert dag["dag_id"] == "golden" and dag["schedule"] is None and dag["catchup"] is False
    tasks = {c["task_id"]: c for c in calls["BashOperator"]}
    assert list(tasks) == ["load", "square", "total", "total_2", "conveyor-finish-run"]
    assert tasks["load"]["retries"] == 0 and "retry_delay" not in tasks["load"]
    assert tasks["square"]["retries"] == 2
    assert tasks["square"]["retry_delay"] == "datetime.timedelta(seconds=5.0)"
    assert tasks["square"]["execution_timeout"] == "datetime.timedelta(seconds=600.0)"
    assert tasks["total"]["pool"] == "crunch" and tasks["total"]["priority_weight"] == 5
    assert tasks["total"]["queue"] == "cpu"
    assert "TOKEN': '{{api_token.value}}'" in tasks["square"]["env"]  # a secret reference, never its value


def test_interval_schedules_and_naive_dates() -> None:
    dep = deployment(tp.golden, schedule=Schedule(interval_seconds=5400, start_date=datetime(2026, 3, 1)))
    dag = _calls(compile_source(dep))["DAG"][0]
    assert dag["schedule"] == "datetime.timedelta(seconds=5400.0)"
    assert dag["start_date"] == "datetime.datetime.fromisoformat('2026-03-01T00:00:00+00:00')"


def test_steps_that_need_sanitizing_keep_their_name_for_display() -> None:
    calls = _calls(compile_source(deployment(tp.hostile)))
    dag = calls["DAG"][0]
    assert dag["dag_display_name"] == tp.HOSTILE_PIPELINE
    assert set(dag["dag_id"]) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")
    names = {c.get("task_display_name", c["task_id"]) for c in calls["BashOperator"]}
    assert names == {*tp.STEP_NAMES, "conveyor-finish-run"}


def test_a_teardown_task_settles_the_run_after_every_step_task() -> None:
    source = compile_source(deployment(tp.golden))
    finish = _calls(source)["BashOperator"][-1]
    assert (finish["task_id"], finish["bash_command"], finish["retries"]) == ("conveyor-finish-run", "FINISH_RUN", 2)
    # Every step task is upstream, not only the last: a task whose upstream failed is done while others still run.
    assert source.rstrip().endswith(
        "[tasks['load'], tasks['square'], tasks['total'], tasks['total_2']] >> finish.as_teardown()"
    )


def test_the_teardown_task_runs_where_the_pipeline_runs() -> None:
    # The orchestrator's mode when a step runs that way; else the first step's (the worker may lack conveyor).
    mixed = deployment(tp.golden, images={"": IMAGE}, steps={"load": {"settings": {"airflow": {"operator": "docker"}}}})
    assert _calls(compile_source(mixed))["BashOperator"][-1]["task_id"] == "conveyor-finish-run"
    kube = _calls(compile_source(mixed, operator="kubernetes_pod"))
    assert kube["KubernetesPodOperator"][-1]["task_id"] == "conveyor-finish-run"
    only_docker = _calls(compile_source(_one_step(extra={"airflow": {"operator": "docker"}}), image=IMAGE))
    assert [t["task_id"] for t in only_docker["DockerOperator"]] == ["s", "conveyor-finish-run"]
    assert "BashOperator" not in only_docker
    pipeline_wide = deployment(
        tp.golden, images={"": IMAGE}, settings={"airflow": {"operator": "docker", "queue": "q"}}
    )
    finish = _calls(compile_source(pipeline_wide))["DockerOperator"][-1]
    assert (finish["task_id"], finish["queue"], finish["image"]) == ("conveyor-finish-run", "q", f"literal({IMAGE!r})")
    assert "'finish-run'" in finish["command"] and "'run-step'" not in finish["command"]


def test_a_step_cannot_take_the_teardown_tasks_id() -> None:
    step = StepIR(id="conveyor-finish-run", name="conveyor-finish-run", source="m:s", code_hash="0")
    dep = Deployment(pipeline=PipelineIR(name="p", steps=(step,)), stack=STACK)
    with pytest.raises(ConfigError, match="rename the step"):
        compile_dag(dep, AirflowOrchestratorConfig(), **MACHINE)


# -- what Airflow cannot do: compile-time errors ------------------------------------------------
def _one_step(**settings: Any) -> Deployment:
    step = StepIR(id="s", name="s", source="m:s", code_hash="0", settings=settings)
    return Deployment(pipeline=PipelineIR(name="p", steps=(step,)), stack=STACK)


@pytest.mark.parametrize(
    ("settings", "config", "error", "words"),
    [
        ({"step_operator": "docker"}, {}, CapabilityError, "step operator 'docker'"),
        ({"resources": {"gpu_count": 1}}, {}, CapabilityError, "GPUs"),
        ({"resources": {"cpu": 2}}, {}, CapabilityError, "cpu/memory"),
        ({"resources": {"gpu_type": "a100"}}, {"operator": "docker", "image": IMAGE}, CapabilityError, "GPU type"),
        (
            {"resources": {"gpu_type": "a100"}},
            {"operator": "kubernetes_pod", "image": IMAGE},
            CapabilityError,
            "gpu_type_label",
        ),
        ({"extra": {"airflow": {"poool": "x"}}}, {}, ConfigError, "unknown airflow setting 'poool'"),
        ({"extra": {"airflow": {"pool_slots": 0}}}, {}, ConfigError, "pool_slots"),
        ({"extra": {"airflow": {"operator": "ssh"}}}, {}, ConfigError, "operator"),
        ({"extra": {"airflow": {"node_selector": {"a": "b"}}}}, {}, ConfigError, "only the kubernetes_pod"),
        ({"environment": {"A=B": "x"}}, {}, ConfigError, "not a valid name"),
        ({"environment": {"A": "x\x00y"}}, {}, ConfigError, "NUL"),
        ({}, {"operator": "docker"}, ConfigError, "no image"),
    ],
)
def test_settings_airflow_cannot_honour_fail_at_compile_time(
    settings: dict[str, Any], config: dict[str, Any], error: type[Exception], words: str
) -> None:
    with pytest.raises(error) as info:
        compile_dag(_one_step(**settings), AirflowOrchestratorConfig(**config), **MACHINE)
    message = str(info.value)
    assert words in message
    assert "\n" not in message


def test_steps_that_collide_after_sanitizing_are_an_error() -> None:
    steps = (
        StepIR(id="a b", name="a b", source="m:a", code_hash="0"),
        StepIR(id="a_b", name="a_b", source="m:b", code_hash="0"),
    )
    dep = Deployment(pipeline=PipelineIR(name="p", steps=steps), stack=STACK)
    with pytest.raises(ConfigError, match="steps 'a b' and 'a_b' of pipeline 'p' are both task 'a_b'"):
        compile_dag(dep, AirflowOrchestratorConfig(), **MACHINE)


@pytest.mark.parametrize(
    ("schedule", "words"),
    [
        (Schedule(cron="every day"), "not a cron expression"),
        (Schedule(cron="0 6 * *"), "not a cron expression"),
        (Schedule(cron="@daily", catchup=True), "needs a start_date"),
    ],
)
def test_bad_schedules_fail_at_compile_time(schedule: Schedule, words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        compile_dag(deployment(tp.golden, schedule=schedule), AirflowOrchestratorConfig(), **MACHINE)


def test_a_bad_dag_id_setting_is_an_error() -> None:
    with pytest.raises(ConfigError, match="dag_id"):
        compile_dag(
            deployment(tp.golden, settings={"airflow": {"dag_id": "no spaces"}}), AirflowOrchestratorConfig(), **MACHINE
        )


def test_infinite_numbers_cannot_be_written() -> None:
    with pytest.raises(ConfigError, match="finite"):
        compile_dag(_one_step(timeout=float("inf")), AirflowOrchestratorConfig(), **MACHINE)


def test_memory_sizes_in_docker_and_kubernetes_units() -> None:
    dep = _one_step(resources={"cpu": 1.25, "memory": "512MB"})
    docker = _calls(compile_source(dep, operator="docker", image=IMAGE))["DockerOperator"][0]
    assert docker["mem_limit"] == 512_000_000 and docker["cpus"] == 1.25
    kube = compile_source(dep, operator="kubernetes_pod", image=IMAGE)
    assert "requests={'cpu': '1250m', 'memory': '512M'}" in kube


def test_python_mode_teardown_runs_exactly_the_runtimes_finish_command() -> None:
    from conveyor.runtime import finish_command
    from conveyor_airflow._compiler import RUN_CONF, finish_run_shell

    env = {
        "CONVEYOR_PYTHON": "/opt/venv/bin/python",
        "CONVEYOR_DEPLOYMENT": "d3adb33f",
        "AIRFLOW_CTX_DAG_ID": "my_dag",
        "AIRFLOW_CTX_DAG_RUN_ID": "manual__2026-01-01T00:00:00+00:00",
        "PATH": "/usr/bin:/bin",
    }
    script = finish_run_shell(parameters=True).replace("exec ", "printf '%s\\0' ", 1)
    out = subprocess.run(["bash", "-c", script], env=env, capture_output=True, check=True).stdout
    assert out.decode().split("\0")[:-1] == finish_command(
        "d3adb33f",
        run_key="airflow:my_dag:manual__2026-01-01T00:00:00+00:00",
        params_json=RUN_CONF,  # Airflow renders it before the shell runs
        orchestrator_run_id="manual__2026-01-01T00:00:00+00:00",
        python="/opt/venv/bin/python",
    )


def test_python_mode_tasks_run_exactly_the_runtimes_step_command() -> None:
    import subprocess

    from conveyor.runtime import step_command
    from conveyor_airflow._compiler import run_step_shell

    env = {
        "CONVEYOR_PYTHON": "/opt/venv/bin/python",
        "CONVEYOR_DEPLOYMENT": "d3adb33f",
        "CONVEYOR_STEP": "train model 2",
        "AIRFLOW_CTX_DAG_ID": "my_dag",
        "AIRFLOW_CTX_DAG_RUN_ID": "manual__2026-01-01T00:00:00+00:00",
        "PATH": "/usr/bin:/bin",
    }
    script = run_step_shell().replace("exec ", "printf '%s\\0' ", 1)
    out = subprocess.run(["bash", "-c", script], env=env, capture_output=True, check=True).stdout
    assert out.decode().split("\0")[:-1] == step_command(
        "d3adb33f",
        "train model 2",
        run_key="airflow:my_dag:manual__2026-01-01T00:00:00+00:00",
        orchestrator_run_id="manual__2026-01-01T00:00:00+00:00",
        python="/opt/venv/bin/python",
    )


def test_docker_tasks_on_a_server_take_the_workers_key_when_they_run(monkeypatch: pytest.MonkeyPatch) -> None:
    dep = _one_step()
    machine = {**MACHINE, "store_url": "http://127.0.0.1:8237"}
    source = compile_dag(dep, AirflowOrchestratorConfig(operator="docker", image=IMAGE), **machine).source
    # The step's task and the finish-run teardown both talk to the server.
    dockers = _calls(source)["DockerOperator"]
    assert len(dockers) == 2 and all(d["private_environment"] == "WORKER_CREDENTIAL" for d in dockers)
    assert "CONVEYOR_STORE_URL': 'http://127.0.0.1:8237'" in source
    # The key is read from the environment of the process that parses the file, and written nowhere.
    monkeypatch.setenv("CONVEYOR_API_KEY", "cvk_worker-runner-key")
    [line] = [line for line in source.splitlines() if line.startswith("WORKER_CREDENTIAL = ")]
    assert "\nimport os\n" in source
    namespace: dict[str, Any] = {"os": os}
    exec(compile(line, "dag.py", "exec"), namespace)
    assert namespace["WORKER_CREDENTIAL"] == {"CONVEYOR_API_KEY": "cvk_worker-runner-key"}
    assert "cvk_" not in source
    # A SQL store's DAG passes no credential (its goldens are unchanged).
    sql = compile_dag(dep, AirflowOrchestratorConfig(operator="docker", image=IMAGE), **MACHINE).source
    assert "WORKER_CREDENTIAL" not in sql and "import os" not in sql
