"""Exported DAGs on real Airflow: DagBag parses them, ``dag.test()`` runs them, artifacts match the local stack.

All DAGs run in this one process (the first ``dag.test()`` builds Airflow's
in-process execution API; later ones reuse it).
"""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import airflow_test_pipelines as tp
import pytest
from airflow_harness import AirflowHome, airflow_surfaces, run_case_on_airflow, run_dag

from conveyor import Client, Schedule, export_pipeline
from conveyor.runtime import step_command
from conveyor_testing.conformance import (
    CASES,
    OrchestratorContract,
    artifact_hashes,
    check_run,
    load_pipeline,
    run_case,
)

pytestmark = [pytest.mark.integration, pytest.mark.airflow]


def register(**config: Any) -> None:
    client = Client()
    client.register_component("orchestrator", "af", "airflow", config)
    client.register_stack("on_airflow", {"orchestrator": "af", "artifact_store": "default"})


class TestAirflowPythonModeConformance(OrchestratorContract):
    """Every conformance case as a DAG run by ``dag.test()``, its steps in an interpreter without Airflow."""

    @pytest.fixture
    def conformance_stack(self, repo: Path, airflow_home: AirflowHome, step_python: str) -> str:
        register(python=step_python)
        return "on_airflow"

    def run_on_engine(self, case: Any, stack: str, request: pytest.FixtureRequest) -> Any:
        return run_case_on_airflow(case, stack, request.getfixturevalue("airflow_home").dags)[0]

    def check_engine_run(self, case: Any, run: Any, reference: Any, request: pytest.FixtureRequest) -> None:
        assert run.orchestrator == "airflow"
        assert run.orchestrator_run_id is not None and run.orchestrator_run_id.startswith("manual__")

    def run_through_server(self, case: Any, stack: str, request: pytest.FixtureRequest, runner_key: str) -> Any:
        return run_case_on_airflow(case, stack, request.getfixturevalue("airflow_home").dags, runner_key)[0]

    def server_leak_surfaces(self, run: Any, request: pytest.FixtureRequest) -> list[Any]:
        return airflow_surfaces(request)


def test_python_mode_with_airflows_own_interpreter(repo: Path, airflow_home: AirflowHome) -> None:
    case = CASES[0]
    register(python=sys.executable)
    local = run_case(case, stack="default")
    [dag_file] = export_pipeline(
        load_pipeline(case).with_options(enable_cache=False),
        airflow_home.dags,
        stack="on_airflow",
        parameters=case.params,
    )
    assert run_dag(dag_file, case.pipeline)[0] == "success"
    run = Client().get_pipeline(case.pipeline).last_run
    check_run(case, run)
    assert artifact_hashes(run) == artifact_hashes(local)


def test_retries_run_again_and_the_run_waits_for_the_last_attempt(
    repo: Path, airflow_home: AirflowHome, step_python: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "attempts"
    monkeypatch.setenv("CONVEYOR_ATTEMPTS_FILE", str(marker))
    register(python=step_python)
    [dag_file] = export_pipeline(tp.flaky, airflow_home.dags, stack="on_airflow")
    state, tasks = run_dag(dag_file, "flaky")
    assert (state, tasks) == (
        "success",
        {"wobble": "success", "after_wobble": "success", "conveyor-finish-run": "success"},
    )
    assert marker.read_text() == "xx"  # failed once, passed on the retry
    run = Client().get_pipeline("flaky").last_run
    assert run.status == "completed" and run.steps["wobble"].record.attempts == 2


def test_names_and_parameters_that_hold_code_run_as_data(
    repo: Path, airflow_home: AirflowHome, step_python: str, canary: Path
) -> None:
    register(python=step_python)
    [dag_file] = export_pipeline(tp.hostile, airflow_home.dags, stack="on_airflow")
    source = dag_file.read_text()
    assert f"CONVEYOR_PIPELINE = {tp.HOSTILE_PIPELINE!r}" in source  # a literal, and nothing else
    from conveyor_airflow import dag_id_for

    state, tasks = run_dag(dag_file, dag_id_for(tp.HOSTILE_PIPELINE))
    assert state == "success" and set(tasks.values()) == {"success"}
    run = Client().get_pipeline(tp.HOSTILE_PIPELINE).last_run
    assert run.status == "completed"
    assert set(run.steps) == set(tp.STEP_NAMES)
    note = tp.PAYLOADS[0] + tp.PAYLOADS[2]
    assert run.steps[tp.STEP_NAMES[1]].output.load() == tp.PAYLOADS[1] * 2 + note
    assert run.steps[tp.STEP_NAMES[5]].output.load() == tp.PAYLOADS[0] + str((len(tp.PAYLOADS[1] * 2 + note) + 1) * 2)
    assert not canary.exists()


MODES = {
    "python": {},
    "docker": {"operator": "docker", "image": "conveyor-python:bookworm"},
    "kubernetes_pod": {"operator": "kubernetes_pod", "image": "conveyor-python:bookworm", "namespace": "pipelines"},
}


def _export_all(folder: Path, mode: str) -> list[str]:
    nightly = Schedule(cron="0 6 * * 1-5", start_date=datetime(2026, 1, 5, tzinfo=timezone.utc), catchup=True)
    hourly = Schedule(interval_seconds=3600, start_date=datetime(2026, 1, 5), end_date=datetime(2027, 1, 1))
    pipelines = [load_pipeline(c).with_options(enable_cache=False) for c in CASES] + [
        tp.golden,
        tp.hostile,
        tp.flaky,
        tp.golden.with_options(
            schedule=nightly,
            settings={
                "airflow": {
                    "dag_id": "golden_nightly",
                    "max_active_runs": 1,
                    "dagrun_timeout": 3600,
                    "tags": ["nightly"],
                }
            },
        ),
        tp.golden.with_options(schedule=hourly, settings={"airflow": {"dag_id": "golden_hourly"}}),
    ]
    if mode != "python":
        pipelines.append(tp.containers.with_options(steps={"tune": {"resources": {"gpu_count": 1}}}))
    dag_ids = []
    for pipe in pipelines:
        [path] = export_pipeline(pipe, folder, stack="on_airflow")
        dag_ids.append(path.stem)
    return dag_ids


@pytest.mark.parametrize("mode", sorted(MODES))
def test_dagbag_imports_every_exported_dag_without_errors(
    mode: str, repo: Path, airflow_home: AirflowHome, canary: Path
) -> None:
    from airflow.dag_processing.dagbag import DagBag

    register(**MODES[mode])
    folder = repo / "dags" / mode
    dag_ids = _export_all(folder, mode)
    bag = DagBag(dag_folder=str(folder), safe_mode=False)
    assert bag.import_errors == {}
    assert sorted(bag.dag_ids) == sorted(dag_ids)
    for dag_id in dag_ids:
        dag = bag.get_dag(dag_id)
        pipeline = Client().store.get_deployment_json(dag.doc_md.split("`")[1])
        assert len(dag.tasks) == pipeline.count('"code_hash"') + 1  # and the teardown task
    nightly = bag.get_dag("golden_nightly")
    assert (nightly.catchup, nightly.max_active_runs, nightly.tags) == (True, 1, {"conveyor", "nightly"})
    assert nightly.timetable.expression == "0 6 * * 1-5"
    assert bag.get_dag("golden_hourly").end_date == datetime(2027, 1, 1, tzinfo=timezone.utc)
    assert not canary.exists()


def test_a_separate_airflow_process_imports_hostile_dags_and_runs_nothing(
    repo: Path, airflow_home: AirflowHome, canary: Path
) -> None:
    for mode, config in MODES.items():
        Client().register_component("orchestrator", f"af_{mode}", "airflow", config)
        Client().register_stack(f"on_{mode}", {"orchestrator": f"af_{mode}", "artifact_store": "default"})
        export_pipeline(
            tp.hostile.with_options(settings={"airflow": {"dag_id": f"hostile_{mode}"}}),
            repo / "hostile",
            stack=f"on_{mode}",
        )
    script = (
        "import sys, json\n"
        "from airflow.dag_processing.dagbag import DagBag\n"
        "bag = DagBag(dag_folder=sys.argv[1], safe_mode=False)\n"
        "print(json.dumps({'errors': list(bag.import_errors), 'dags': {d: [bag.get_dag(d).dag_display_name,"
        " sorted(t.task_display_name for t in bag.get_dag(d).tasks)] for d in bag.dag_ids}}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(repo / "hostile")], capture_output=True, text=True, timeout=300, check=True
    )
    import json

    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["errors"] == []
    steps = sorted([*tp.STEP_NAMES, "conveyor-finish-run"])
    assert result["dags"] == {f"hostile_{m}": [tp.HOSTILE_PIPELINE, steps] for m in MODES}
    assert not canary.exists()


def test_kubernetes_pods_carry_image_command_resources_and_selectors(repo: Path, airflow_home: AirflowHome) -> None:
    from airflow.dag_processing.dagbag import DagBag

    register(
        operator="kubernetes_pod",
        image="registry.example/conveyor:1",
        namespace="pipelines",
        gpu_type_label="cloud.google.com/gke-accelerator",
    )
    pipe = tp.containers.with_options(
        steps={
            "train": {
                "settings": {"airflow": {"node_selector": {"pool": "highmem"}, "annotations": {"note": "{{ ds }}"}}}
            }
        }
    )
    [path] = export_pipeline(pipe, repo / "dags", stack="on_airflow")
    bag = DagBag(dag_folder=str(path), safe_mode=False)
    assert bag.import_errors == {}
    dag = bag.get_dag("containers")
    deployment_id = dag.doc_md.split("`")[1]
    # A DAG run triggered without a config: the pipeline's parameters reach the step command as "{}".
    context = {"dag": dag, "run_id": "manual__2026-01-01", "ds": "2026-01-01", "dag_run": SimpleNamespace(conf={})}
    pods = {}
    for step_id in ("train", "tune"):
        task = dag.get_task(step_id)
        task.render_template_fields(context)
        pods[step_id] = task.build_pod_request_obj(None, dry_run=True)
    train = pods["train"].spec.containers[0]
    assert pods["train"].metadata.namespace == "pipelines"
    assert train.image == "registry.example/conveyor:1"
    # The one step command of conveyor.runtime, with Airflow's run id filled in.
    assert [*train.command, *train.args] == step_command(
        deployment_id,
        "train",
        run_key="airflow:containers:manual__2026-01-01",
        image="registry.example/conveyor:1",
        params_json="{}",
        orchestrator_run_id="manual__2026-01-01",
    )
    assert {e.name: e.value for e in train.env} == {"CONVEYOR_STORE_URL": f"sqlite:///{repo}/.conveyor/conveyor.db"}
    assert train.resources.requests == {"cpu": "500m", "memory": "1536Mi"}  # 1.5Gi, exactly
    assert pods["train"].spec.node_selector == {"pool": "highmem"}
    assert pods["train"].metadata.annotations == {"note": "{{ ds }}"}  # a value, not a template
    tune = pods["tune"].spec.containers[0]
    assert tune.resources.limits == {"nvidia.com/gpu": "1"}
    assert pods["tune"].spec.node_selector == {"cloud.google.com/gke-accelerator": "nvidia-tesla-t4"}
