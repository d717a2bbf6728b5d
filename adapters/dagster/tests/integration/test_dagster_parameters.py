"""Pipeline parameters stay parameters on Dagster: a run's config overrides them, and the step command checks them.

An exported job's parameters are the config of its ``conveyor`` resource. A
run launched with a config (the launchpad, ``dagster job launch -c``,
``execute_job(run_config=...)``) hands them to every step command, which
checks the values; a bad one fails the Dagster run with the step command's
own line.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conveyor import Client, export_pipeline
from conveyor_testing.conformance import case, load_pipeline
from conveyor_testing.processes import spawn_server, stop_server

pytestmark = [pytest.mark.integration, pytest.mark.dagster]

DAGSTER = str(Path(sys.executable).parent / "dagster")


@pytest.fixture
def quickstart_file(dagster_stack: str, tmp_path: Path) -> Path:
    """The quickstart pipeline exported for Dagster with n=20 (cache off, so every run runs its steps)."""
    c = case("quickstart")
    pipe = load_pipeline(c).with_options(enable_cache=False)
    [path] = export_pipeline(pipe, tmp_path / "code", stack=dagster_stack, parameters=c.params)
    return path


@pytest.fixture
def daemon(quickstart_file: Path, dagster_home: Path, tmp_path: Path) -> Iterator[Path]:
    """``dagster-daemon run`` over the exported file: it starts the runs the launchpad and ``dagster job launch`` queue."""
    log = tmp_path / "daemon.log"
    proc = spawn_server(
        [str(Path(DAGSTER).parent / "dagster-daemon"), "run", "-f", str(quickstart_file)],
        log_path=log,
        env=dict(os.environ),
    )
    try:
        yield log
    finally:
        # group: the code servers and run workers it started, in the session it leads.
        stop_server(proc, timeout=30, group=True)


def _conveyor_run(dagster_run_id: str) -> Any:
    [run] = [r for r in Client().get_pipeline("quickstart").runs if r.record.orchestrator_run_id == dagster_run_id]
    return run


def _execute(path: Path, instance: Any, config: dict[str, Any]) -> Any:
    """``execute_job`` of the file's job with ``config`` as its ``conveyor`` resource's config."""
    import dagster as dg

    job = dg.build_reconstructable_job(
        "conveyor_dagster", "load_job", (str(path),), reconstructor_working_directory=str(path.parent)
    )
    return dg.execute_job(job, instance=instance, run_config={"resources": {"conveyor": {"config": config}}})


def test_a_run_launched_with_a_config_overrides_the_parameters(
    quickstart_file: Path, dagster_home: Path, daemon: Path, instance: Any, tmp_path: Path
) -> None:
    import dagster as dg

    config = tmp_path / "run.yaml"  # what the launchpad's config editor holds
    config.write_text("resources:\n  conveyor:\n    config:\n      n: 7\n")
    run_id = str(uuid.uuid4())
    launched = subprocess.run(
        [
            DAGSTER,
            "job",
            "launch",
            "-f",
            str(quickstart_file),
            "-j",
            "quickstart",
            "-c",
            str(config),
            "--run-id",
            run_id,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "DAGSTER_HOME": str(dagster_home)},
        check=False,
    )
    assert launched.returncode == 0, launched.stderr[-3000:]
    deadline = time.monotonic() + 300
    while True:  # queued: the daemon starts it in a run worker of its own
        dagster_run = instance.get_run_by_id(run_id)
        if dagster_run is not None and dagster_run.is_finished:
            break
        assert time.monotonic() < deadline, f"Dagster run {run_id} did not finish: {daemon.read_text()[-3000:]}"
        time.sleep(1)
    assert dagster_run.status == dg.DagsterRunStatus.SUCCESS
    run = _conveyor_run(run_id)
    assert run.status == "completed" and run.parameters == {"n": 7}
    assert run.steps["load_data"].outputs["numbers"].load() == list(range(7))
    assert run.steps["total_2"].output.load() == 1 + 3 + 5


def test_a_run_without_a_config_keeps_the_exported_values(quickstart_file: Path, instance: Any) -> None:
    result = _execute(quickstart_file, instance, {})
    assert result.success
    run = _conveyor_run(result.run_id)
    assert run.status == "completed" and run.parameters == {"n": 20}
    assert run.steps["load_data"].outputs["numbers"].load() == list(range(20))


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("seven", "parameter 'n' of step 'load_data' is 'seven', which is not a valid"),
        (None, "parameter 'n' of step 'load_data' is None, which is not a valid"),
    ],
    ids=["text", "null"],
)
def test_a_bad_value_fails_the_run_with_the_step_commands_one_line(
    quickstart_file: Path, instance: Any, value: Any, says: str
) -> None:
    result = _execute(quickstart_file, instance, {"n": value})
    assert not result.success
    failure = result.failure_data_for_node("load_data")
    description = failure.user_failure_data.description
    assert "\n" not in description
    assert description.startswith("conveyor step 'load_data' failed (exit code 1); conveyor: step 'load_data' failed")
    assert says in description
    run = _conveyor_run(result.run_id)
    assert run.status == "failed"
    assert run.steps["load_data"].status == "failed" and says in (run.steps["load_data"].record.error or "")
    assert {s: run.steps[s].status for s in ("split", "total", "total_2")} == dict.fromkeys(
        ("split", "total", "total_2"), "skipped"
    )


@pytest.mark.parametrize(("value", "shown"), [([1, "\ud800"], "[1, '\\ud800']"), (float("nan"), "nan")])
def test_a_value_no_run_can_record_is_refused_by_the_step_command(
    quickstart_file: Path, instance: Any, value: Any, shown: str
) -> None:
    result = _execute(quickstart_file, instance, {"n": value})
    assert not result.success
    description = result.failure_data_for_node("load_data").user_failure_data.description
    assert description == (
        "conveyor step 'load_data' could not start (exit code 2); conveyor: error: parameter 'n' of pipeline "
        f"'quickstart' is {shown}, which no run can record (give finite numbers and text without lone surrogates)"
    )


def test_a_value_no_json_can_carry_fails_the_op_in_one_line(quickstart_file: Path, instance: Any) -> None:
    result = _execute(quickstart_file, instance, {"n": b"\x00seven"})
    assert not result.success
    description = result.failure_data_for_node("load_data").user_failure_data.description
    assert description == (
        "conveyor step 'load_data' did not start: parameter 'n' in the run's config is a bytes, not a JSON value; "
        "give a number, string, boolean, null, list or mapping"
    )


def test_a_name_the_pipeline_does_not_have_is_refused_before_a_run_starts(quickstart_file: Path, instance: Any) -> None:
    import dagster as dg

    before = len(instance.get_runs())
    with pytest.raises(dg.DagsterInvalidConfigError, match='unexpected config entry "nn"'):
        _execute(quickstart_file, instance, {"nn": 7})
    assert len(instance.get_runs()) == before
