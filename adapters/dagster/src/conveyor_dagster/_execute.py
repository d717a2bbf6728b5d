"""Running a definitions file's job with Dagster's own execution (imports Dagster).

:func:`execute_definitions` is what ``dagster job execute -f FILE`` does:
``execute_job`` with a reconstructable job and the instance of a
``DAGSTER_HOME``, so the multiprocess executor runs independent ops in
parallel and the run is recorded in that instance.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LAUNCH_TAG = "conveyor/launch"
"""Tag of a run this module executed: finds the run when the execution was interrupted."""
TELEMETRY_OFF = "# Written by conveyor-dagster for a new Dagster home.\ntelemetry:\n  enabled: false\n"


@dataclass(frozen=True)
class Execution:
    """How an execution ended: the Dagster run, if one was made, and whether it succeeded."""

    run_id: str | None
    success: bool
    interrupted: bool = False


def _load_module(path: str) -> Any:
    data = Path(path).read_bytes()
    # Named by content: a file written again for a new deployment is a new module.
    name = "_conveyor_dagster_" + hashlib.sha256(path.encode("utf-8", "surrogatepass") + data).hexdigest()[:24]
    module = sys.modules.get(name)
    if module is None:
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[name]
            raise
    return module


def load_job(path: str) -> Any:
    """The job of a definitions file (what ``build_reconstructable_job`` calls in each op process)."""
    return _load_module(path).conveyor_job


def load_definitions(path: str) -> Any:
    """The ``Definitions`` of a definitions file, as a code location loads them (imports Dagster)."""
    return _load_module(path).defs


def prepare_home(home: Path) -> None:
    """Create a Dagster home; a home without ``dagster.yaml`` gets one with telemetry off."""
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text(TELEMETRY_OFF, encoding="utf-8")


@contextlib.contextmanager
def _dagster_home(home: Path) -> Iterator[None]:
    previous = os.environ.get("DAGSTER_HOME")
    os.environ["DAGSTER_HOME"] = str(home)
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("DAGSTER_HOME", None)
        else:
            os.environ["DAGSTER_HOME"] = previous


def execute_definitions(path: Path, home: Path, *, log_level: str = "INFO") -> Execution:
    """Execute the job of a definitions file in the instance of ``home``; waits for it to end.

    Ctrl-C (or SIGTERM) stops the run: Dagster tells its op processes, each
    op stops its step, the run fails, and the result says it was interrupted.
    """
    import dagster as dg

    prepare_home(home)
    launch = uuid.uuid4().hex
    with _dagster_home(home):
        instance = dg.DagsterInstance.get()
        try:
            job = dg.build_reconstructable_job(
                "conveyor_dagster._execute", "load_job", (str(path),), reconstructor_working_directory=str(path.parent)
            )
            result = dg.execute_job(
                job,
                instance=instance,
                tags={LAUNCH_TAG: launch},
                run_config={"loggers": {"console": {"config": {"log_level": log_level}}}},
            )
        except KeyboardInterrupt:  # before or after Dagster listened for it
            return Execution(run_id=_run_of(instance, launch), success=False, interrupted=True)
        finally:
            instance.dispose()
    return Execution(run_id=result.run_id, success=result.success, interrupted=_interrupted(result))


def _interrupted(result: Any) -> bool:
    """Whether a failed run failed because Dagster was interrupted (it turns Ctrl-C into a run failure)."""
    if result.success:
        return False
    failure = result.get_run_failure_event().job_failure_data
    error = failure.error if failure is not None else None
    return error is not None and error.cls_name == "DagsterExecutionInterruptedError"


def _run_of(instance: Any, launch: str) -> str | None:
    import dagster as dg

    runs = instance.get_runs(filters=dg.RunsFilter(tags={LAUNCH_TAG: launch}), limit=1)
    return runs[0].run_id if runs else None
