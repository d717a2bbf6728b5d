"""Run records: naming, creating or joining a run, and settling it after its engine ended it.

Every orchestrator and the step command build a run the same way, here, so
a run looks the same whichever engine ran it.
"""

from __future__ import annotations

import subprocess
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conveyor.exceptions import ConfigError
from conveyor.stores import RunStatus, current_process_identity, now

if TYPE_CHECKING:
    from conveyor.ir import Deployment
    from conveyor.stores import MetadataStore, RunRecord


def _check(name: str) -> str:
    from conveyor.ir import NAME_RULE, name_problem, shown

    problem = name_problem(name)
    if problem is not None:
        raise ConfigError(f"run name {shown(name)} {problem}", NAME_RULE)
    return name


def check_run_name_template(template: str) -> None:
    """Check a ``run_name`` template: known fields only, and every name it makes is valid.

    Raises:
        ConfigError: an unknown field, a bad brace, or names the naming rule refuses.
    """
    from conveyor.ir import run_name_template_problem, shown

    problem = run_name_template_problem(template)
    if problem is not None:
        raise ConfigError(f"run_name {shown(template)} {problem}")


def make_run_name(pipeline: str, template: str | None) -> str:
    """A run name from a template (``{date}``, ``{time}``, ``{pipeline}``) or ``<pipeline>-<date>-<time>``.

    Raises:
        ConfigError: the template is not valid, or makes a name the naming rule refuses.
    """
    from conveyor.ir import fill_run_name
    from conveyor.stores import LATEST

    stamp = datetime.now(timezone.utc)
    date, clock = stamp.strftime("%Y_%m_%d"), stamp.strftime("%H_%M_%S_%f")
    if template:
        check_run_name_template(template)
        name = _check(fill_run_name(template, pipeline, date, clock))
        if name == LATEST:
            raise ConfigError(
                f"run name {LATEST!r} is reserved: it names the newest run", "put {date} and {time} in run_name"
            )
        return name
    return _check(f"{pipeline}-{date}-{clock}")


def code_version(folder: Path | None) -> tuple[str | None, bool | None]:
    """``(git commit, tree is dirty)`` of the folder's git checkout, or ``(None, None)``."""
    if folder is None:
        return None, None
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True, text=True, timeout=10, check=False
        )
        if commit.returncode != 0:
            return None, None
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None, None
    return commit.stdout.strip() or None, bool(status.stdout.strip())


def start_run(
    store: MetadataStore,
    deployment: Deployment,
    *,
    run_key: str | None = None,
    owned: bool = False,
    source_root: Path | None = None,
    parameters: dict[str, Any] | None = None,
    orchestrator_run_id: str | None = None,
    **values: Any,
) -> RunRecord:
    """Create the run record of a deployment, or join the run of an engine's run key.

    Args:
        run_key: the engine's run identifier; the first caller creates the
            run, later callers (the other steps of the same engine run) get it.
        owned: this process drives the run, so a run left ``running`` when it
            dies is marked failed later.
        source_root: where the user's code is, for its git commit.
        parameters: pipeline parameter overrides of this run.
        orchestrator_run_id: the engine's own id of this run.
        **values: other run fields (``status``, ``extra``, ...).

    Raises:
        StoreError: the run's name is taken.
        ConfigError: the run name template is not valid.
    """
    pipeline = deployment.pipeline
    commit, dirty = code_version(source_root)
    host, pid, pid_started = current_process_identity() if owned else (None, None, None)
    record = {
        "name": make_run_name(pipeline.name, deployment.run_name),
        "pipeline_id": store.get_or_create_pipeline(pipeline.name).id,
        "deployment_id": deployment.id,
        "status": RunStatus.RUNNING,
        "started": now(),
        # The deployment holds the parameters; a run records only what it changed.
        "parameters": {
            k: v
            for k, v in (parameters or {}).items()
            if pipeline.parameters.get(k, v) != v or k not in pipeline.parameters
        },
        "stack_name": deployment.stack.name,
        "orchestrator": deployment.stack.components["orchestrator"].flavor,
        "orchestrator_run_id": orchestrator_run_id,
        "code_commit": commit,
        "code_dirty": dirty,
        "host": host,
        "pid": pid,
        "pid_started": pid_started,
        "tags": list(pipeline.tags),
        **values,
    }
    if run_key is not None:
        return store.join_run(run_key, **record)
    return store.create_run(**record)


def settle_after_engine(store: MetadataStore, deployment: Deployment, run: RunRecord) -> str:
    """Settle a run its engine has ended, from what its steps recorded; returns the run's status.

    Steps the engine never started are recorded skipped, steps still
    ``running`` (their process was killed) failed, and the run completed only
    when every step succeeded. A run already settled keeps its status. Then
    the hooks still due run: failure hooks of failed steps whose own process
    could not run them, and the pipeline's (each once, whoever ran it).
    """
    from conveyor.runtime._hooks import run_due_hooks, settle_run

    current = store.get_run(run.id)
    if current.status != RunStatus.RUNNING:
        run_due_hooks(store, deployment, run.id)
        return current.status
    records = {r.step_id: r for r in store.list_step_runs(run.id)}
    unfinished = []
    for step in deployment.pipeline.steps:
        record = records.get(step.id)
        if record is None:
            store.record_step_run(
                run.id,
                step.id,
                status=RunStatus.SKIPPED,
                step_name=step.name,
                source=step.source,
                code_hash=step.code_hash,
                error="its engine ended the run before it started",
            )
            unfinished.append(step.id)
        elif record.status == RunStatus.RUNNING:
            store.finish_step_run(
                record.id, RunStatus.FAILED, error="its engine ended the run while it ran (its process was killed)"
            )
            unfinished.append(step.id)
        elif record.status not in RunStatus.SUCCEEDED:
            unfinished.append(step.id)
    if unfinished:
        settle_run(
            store,
            deployment,
            run.id,
            RunStatus.FAILED,
            error=f"the engine ended the run before step {unfinished[0]!r} finished",
        )
    else:
        settle_run(store, deployment, run.id, RunStatus.COMPLETED)
    return store.get_run(run.id).status
