"""An exported job under the Dagster daemon: a run whose op was killed is settled by the job's own sensor.

Nothing of conveyor watches this run: Dagster launches it (``dagster job
launch``, as a schedule or the launchpad would), its op process is killed
before the step can record anything, and only the run status sensor in the
exported file, evaluated by ``dagster-daemon``, runs ``finish-run``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import dagster_test_pipelines as tp
import pytest

from conveyor import Client, export_pipeline
from conveyor_testing.sql_servers import spawn_server, stop_server

pytestmark = [pytest.mark.integration, pytest.mark.dagster]

BIN = Path(sys.executable).parent
START_TIMEOUT = 120.0
SETTLE_TIMEOUT = 180.0


@pytest.fixture
def exported(repo: Path, tmp_path: Path) -> Path:
    client = Client()
    client.register_component("orchestrator", "dg", "dagster", {"sensor_interval": 2})
    client.register_stack("on_dagster", {"orchestrator": "dg", "artifact_store": "default"})
    [path] = export_pipeline(tp.killed.with_options(enable_cache=False), tmp_path / "code", stack="on_dagster")
    return path


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "dagster-home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return home


@pytest.fixture
def daemon(exported: Path, home: Path, tmp_path: Path) -> Iterator[Path]:
    """``dagster-daemon run`` over the exported file; yields its log once the finish sensor has ticked."""
    log = tmp_path / "daemon.log"
    proc = spawn_server([str(BIN / "dagster-daemon"), "run", "-f", str(exported)], log_path=log, env=dict(os.environ))
    try:
        deadline = time.monotonic() + START_TIMEOUT
        # A run status sensor sees only runs that end after its first tick.
        while "Sensor killed_conveyor_failure skipped: Initiating" not in log.read_text(errors="replace"):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"dagster-daemon did not start its sensors; see {log}", pytrace=False)
            time.sleep(0.5)
        yield log
    finally:
        stop_server(proc, timeout=30)
        try:  # the code servers and run workers it started, in the session it leads
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def test_the_finish_sensor_settles_a_run_whose_op_was_killed(exported: Path, daemon: Path) -> None:
    launched = subprocess.run(
        [str(BIN / "dagster"), "job", "launch", "-f", str(exported)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert launched.returncode == 0, launched.stderr[-3000:]
    client = Client()
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while True:
        runs = client.list_runs("killed")
        if runs and runs[0].status != "running":
            break
        if time.monotonic() > deadline:
            pytest.fail(f"the conveyor run was not settled; see {daemon}", pytrace=False)
        time.sleep(1)
    run = runs[0]
    assert run.status == "failed"
    assert run.steps["doomed"].status == "failed"
    assert "killed" in (run.steps["doomed"].record.error or "")
    assert run.steps["after_doomed"].status == "skipped"
    # The sensor settles the run, then the daemon logs that it acted once the sensor returns.
    acted = f'Sensor "killed_conveyor_failure" acted on run status FAILURE of run {run.record.orchestrator_run_id}'
    deadline = time.monotonic() + 60
    while acted not in daemon.read_text(errors="replace"):
        assert time.monotonic() < deadline, f"the daemon never said the sensor acted; see {daemon}"
        time.sleep(0.5)
