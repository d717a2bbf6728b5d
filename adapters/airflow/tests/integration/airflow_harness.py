"""Helpers of the integration tests: the Airflow homes the fixtures make, and running one DAG."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from conveyor_airflow._compiler import FINISH_TASK


@dataclass(frozen=True)
class AirflowHome:
    """An Airflow home whose settings this process uses."""

    home: Path
    dags: Path


@dataclass
class AirflowServers:
    """api-server + scheduler + dag-processor on 127.0.0.1."""

    url: str
    home: Path
    dags: Path
    username: str
    password: str
    logs: Path

    def tail(self) -> str:
        out = []
        for log in sorted(self.logs.glob("*.log")):
            lines = log.read_text(errors="replace").splitlines()[-8:]
            out.append(f"--- {log.name}\n" + "\n".join(lines))
        return "\n".join(out)


def run_dag(dag_file: Path, dag_id: str) -> tuple[str, dict[str, str]]:
    """Parse one DAG file and run its DAG with ``dag.test()``; returns the run's state and task states."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(dag_file), safe_mode=False)
    assert not bag.import_errors, bag.import_errors
    dag_run = bag.get_dag(dag_id).test()
    tasks = {ti.task_id: str(getattr(ti.state, "value", ti.state)) for ti in dag_run.get_task_instances()}
    return str(getattr(dag_run.state, "value", dag_run.state)), tasks


def run_case_on_airflow(case: Any, stack: str, dags: Path, runner_key: str | None = None) -> tuple[Any, Path]:
    """Export a conformance case's DAG on ``stack`` into ``dags``, run it with ``dag.test()``: its conveyor run, its file.

    With ``runner_key`` (the repository is a conveyor server) the DAG is
    exported with this process's credential and run by workers that hold
    that ``runner`` key instead (this process is both here).

    Checks what Airflow says of the DAG run and each task: success, or for
    the failing case failed where conveyor's step failed and upstream_failed
    where conveyor skipped a step.
    """
    from conveyor import Client, export_pipeline
    from conveyor_testing.conformance import load_pipeline

    pipe = load_pipeline(case).with_options(enable_cache=False)
    [dag_file] = export_pipeline(pipe, dags, stack=stack, parameters=case.params)
    if runner_key is None:
        state, tasks = run_dag(dag_file, case.pipeline)
    else:
        driver = os.environ["CONVEYOR_API_KEY"]
        os.environ["CONVEYOR_API_KEY"] = runner_key
        try:
            state, tasks = run_dag(dag_file, case.pipeline)
        finally:
            os.environ["CONVEYOR_API_KEY"] = driver
    expected = {sid: "success" for sid in case.statuses}
    expected[FINISH_TASK] = "success"  # the teardown task settles the run however the steps ended
    if case.fails:
        # Airflow marks what waits for the failed task upstream_failed; conveyor records those steps skipped.
        expected.update(
            {
                sid: {"failed": "failed", "skipped": "upstream_failed"}.get(s, "success")
                for sid, s in case.statuses.items()
            }
        )
    assert (state, tasks) == ("failed" if case.fails else "success", expected)
    return Client().get_pipeline(case.pipeline).last_run, dag_file


def airflow_surfaces(request: pytest.FixtureRequest) -> list[Any]:
    """What Airflow kept of the DAG runs: the dags folder (the exported DAG files) and its home (database, logs)."""
    home = request.getfixturevalue("airflow_home")
    return [request.getfixturevalue("repo"), home.dags, home.home]
