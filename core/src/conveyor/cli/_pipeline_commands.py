"""``conveyor pipeline ...`` and ``conveyor run ...``: run, export, deploy and inspect."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import click

from conveyor.cli._output import duration, emit_json, fields, heading, iso, json_option, seconds, table, when

if TYPE_CHECKING:
    from conveyor.client import ArtifactView, Client, PipelineRunView, StepRunView

_param_option = click.option(
    "--param",
    "-p",
    "params",
    multiple=True,
    metavar="KEY=VALUE",
    help="A pipeline parameter (VALUE is JSON when it parses, else text); repeatable.",
)


def _client() -> Client:
    from conveyor.client import Client

    return Client()


# -- pipeline ------------------------------------------------------------------------
@click.group()
def pipeline() -> None:
    """Run, export, deploy and list pipelines."""


@pipeline.command(name="list")
@json_option
def list_pipelines(as_json: bool) -> None:
    """List pipelines with their number of runs and latest run."""
    client = _client()
    out = []
    for view in client.list_pipelines():
        runs = client.store.list_runs(view.id)
        last = runs[0] if runs else None
        out.append(
            {
                "id": view.id,
                "name": view.name,
                "created": iso(view.record.created),
                "runs": len(runs),
                "last_run": None
                if last is None
                else {"id": last.id, "name": last.name, "status": last.status, "created": iso(last.created)},
            }
        )
    if as_json:
        emit_json(out)
        return
    rows = [
        [
            p["name"],
            p["runs"],
            p["last_run"]["name"] if p["last_run"] else "-",
            p["last_run"]["status"] if p["last_run"] else "-",
        ]
        for p in out
    ]
    table(["PIPELINE", "RUNS", "LAST RUN", "STATUS"], rows, empty="No pipelines yet.")


def run_summary(run: PipelineRunView, pipeline_name: str) -> dict[str, Any]:
    """A run without its steps, as plain data."""
    return {
        "id": run.id,
        "name": run.name,
        "pipeline": pipeline_name,
        "status": run.status,
        "created": iso(run.created),
        "started": iso(run.started),
        "ended": iso(run.ended),
        "duration": seconds(run.started, run.ended),
        "stack": run.stack_name,
        "orchestrator": run.orchestrator,
        "orchestrator_run_id": run.orchestrator_run_id,
        "parameters": run.parameters,
        "code_commit": run.code_commit,
        "code_dirty": run.code_dirty,
        "error": run.error,
    }


@pipeline.command()
@click.argument("pipeline_name", metavar="[PIPELINE]", required=False)
@click.option("--limit", "-n", type=click.IntRange(min=1), help="Show at most this many runs.")
@json_option
def runs(pipeline_name: str | None, limit: int | None, as_json: bool) -> None:
    """List runs, newest first (of one PIPELINE, or of all)."""
    client = _client()
    names = {p.id: p.name for p in client.store.list_pipelines()}
    out = [run_summary(r, names.get(r.record.pipeline_id, "?")) for r in client.list_runs(pipeline_name, limit)]
    if as_json:
        emit_json(out)
        return
    rows = [
        [
            r["name"],
            r["pipeline"],
            r["status"],
            r["stack"],
            r["orchestrator"],
            when_iso(r["started"]),
            duration(r["duration"]),
        ]
        for r in out
    ]
    table(["RUN", "PIPELINE", "STATUS", "STACK", "ORCHESTRATOR", "STARTED", "DURATION"], rows, empty="No runs yet.")


def when_iso(value: str | None) -> str:
    """An ISO timestamp for people."""
    return when(datetime.fromisoformat(value)) if value else "-"


def _importable_here() -> None:
    """Let ``package.module:name`` refs import from the working folder, as ``python -m`` would."""
    import os
    import sys

    from conveyor.constants import ENV_SOURCE_ROOT

    root = os.path.abspath(os.environ.get(ENV_SOURCE_ROOT) or os.getcwd())
    if root not in sys.path:
        sys.path.insert(0, root)


def _runnable(ref: str) -> Any:
    """The ``Pipeline`` object of a ref; a name imports the code it last ran from."""
    from conveyor._launch import load_pipeline_ref
    from conveyor._source import load_source
    from conveyor.dsl import Pipeline
    from conveyor.exceptions import ConfigError, DefinitionError

    _importable_here()
    target = load_pipeline_ref(ref)
    if isinstance(target, Pipeline):
        return target
    if target.source is None:
        raise ConfigError(f"pipeline {ref!r} has no recorded source to run", "give it as path/to/file.py:name")
    try:
        obj = load_source(target.source)
    except DefinitionError as exc:
        raise ConfigError(
            f"pipeline {ref!r}: {exc.message}", "run from its project folder, or give it as path/to/file.py:name"
        ) from None
    if not isinstance(obj, Pipeline):
        raise ConfigError(f"{target.source} is no longer a @pipeline", "give it as path/to/file.py:name")
    return obj


@pipeline.command(name="run")
@click.argument("ref")
@click.option("--stack", "-s", metavar="STACK", help="Run on this stack (default: the active one).")
@click.option("--config", "-c", "config_path", type=click.Path(dir_okay=False), help="A YAML run config.")
@_param_option
def run_pipeline(ref: str, stack: str | None, config_path: str | None, params: tuple[str, ...]) -> None:
    """Run pipeline REF now and wait for it.

    REF is path/to/file.py:name, package.module:name (importable from the
    working folder), or the name of a pipeline that ran here before (its code
    is imported again from the module it ran from).
    """
    from conveyor.cli._parsing import parse_params

    parameters = parse_params(params)
    run = _runnable(ref).with_options(config_path=config_path, stack=stack)(**parameters)
    if run is None:
        click.echo(f"Pipeline {ref!r} was deployed on its schedule; no run started now.")
        return
    run = run.refresh()
    steps = run.steps.values()
    cached = sum(1 for s in steps if s.cached)
    click.echo(f"Run {run.name}: {run.status} ({len(steps)} steps, {cached} cached, {duration(run.duration)})")


def _schedule(cron: str | None, interval: float | None, start_date: datetime | None) -> Any:
    if cron is None and interval is None:
        if start_date is not None:
            raise click.UsageError("--start-date needs --cron or --interval")
        return None
    if cron is not None and interval is not None:
        raise click.UsageError("give either --cron or --interval, not both")
    from conveyor.exceptions import ConfigError
    from conveyor.ir import Schedule

    try:
        return Schedule(cron=cron, interval_seconds=interval, start_date=start_date)
    except ValueError as exc:  # pydantic's ValidationError, kept to one line
        errors = getattr(exc, "errors", None)
        message = errors()[0]["msg"] if callable(errors) else str(exc).splitlines()[0]
        raise ConfigError(f"bad schedule: {message}") from None


class _IsoDate(click.ParamType):
    name = "ISO-DATE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> datetime:
        if isinstance(value, datetime):
            return value
        try:
            # Python 3.10's fromisoformat does not read a trailing Z
            parsed = datetime.fromisoformat(value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value)
        except ValueError:
            self.fail(f"{value!r} is not an ISO 8601 date (e.g. 2025-01-31 or 2025-01-31T06:00:00+00:00)", param, ctx)
        return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=timezone.utc)


@pipeline.command()
@click.argument("ref")
@click.option("--stack", "-s", required=True, metavar="STACK", help="The stack whose orchestrator compiles it.")
@click.option("--output", "-o", required=True, type=click.Path(), help="Folder to write the compiled files to.")
@_param_option
def export(ref: str, stack: str, output: str, params: tuple[str, ...]) -> None:
    """Compile pipeline REF for a stack's orchestrator and write its files (no run).

    REF is path/to/file.py:name, package.module:name, or the name of a
    pipeline that ran here before.
    """
    from conveyor._launch import export_pipeline
    from conveyor.cli._parsing import parse_params

    _importable_here()
    written = export_pipeline(ref, output, stack=stack, parameters=parse_params(params) or None)
    for path in written:
        click.echo(str(path))


@pipeline.command()
@click.argument("ref")
@click.option("--stack", "-s", required=True, metavar="STACK", help="The stack to deploy to.")
@click.option("--cron", metavar="EXPR", help='Run on a cron schedule, e.g. "0 6 * * *".')
@click.option(
    "--interval", type=click.FloatRange(min=0, min_open=True), metavar="SECONDS", help="Run every SECONDS seconds."
)
@click.option("--start-date", type=_IsoDate(), help="First run not before this time (UTC unless it has an offset).")
@_param_option
def deploy(
    ref: str, stack: str, cron: str | None, interval: float | None, start_date: datetime | None, params: tuple[str, ...]
) -> None:
    """Submit pipeline REF to a stack's orchestrator, on a schedule or once.

    REF is path/to/file.py:name, package.module:name, or the name of a
    pipeline that ran here before.
    """
    from conveyor._launch import deploy_pipeline
    from conveyor.cli._parsing import parse_params

    schedule = _schedule(cron, interval, start_date)
    _importable_here()
    run_id = deploy_pipeline(ref, stack=stack, parameters=parse_params(params) or None, schedule=schedule)
    when_text = f"cron {cron!r}" if cron is not None else f"every {interval:g} s" if interval is not None else None
    if run_id is None:
        click.echo(f"Deployed pipeline {ref!r} on stack {stack!r}" + (f" ({when_text})." if when_text else "."))
        return
    run = _client().get_run(run_id)
    click.echo(f"Submitted run {run.name} on stack {stack!r}: {run.status}")


# -- run -----------------------------------------------------------------------------
@click.group()
def run() -> None:
    """Inspect pipeline runs."""


def _artifact_ref(view: ArtifactView) -> dict[str, Any]:
    return {"id": view.id, "name": view.name, "version": view.version, "uri": view.uri}


def step_json(step: StepRunView) -> dict[str, Any]:
    """A step run as plain data."""
    return {
        "id": step.id,
        "step": step.step_id,
        "name": step.name,
        "status": step.status,
        "cached": step.cached,
        "started": iso(step.started),
        "ended": iso(step.ended),
        "duration": seconds(step.started, step.ended),
        "attempts": step.attempts,
        "parameters": step.parameters,
        "image": step.image,
        "error": step.error,
        "inputs": {k: _artifact_ref(v) for k, v in step.inputs.items()},
        "outputs": {k: _artifact_ref(v) for k, v in step.outputs.items()},
    }


def _unrecorded_steps(client: Client, view: PipelineRunView) -> list[dict[str, Any]]:
    """Steps of the run's pipeline that have no step run yet (engines record a step when it starts)."""
    from conveyor.ir import load_deployment
    from conveyor.stores import RunStatus

    recorded = set(view.steps)
    status = "not run" if view.status in RunStatus.FINISHED else "pending"
    planned = load_deployment(client.store.get_deployment_json(view.deployment_id)).pipeline.steps
    return [
        {
            "id": None,
            "step": s.id,
            "name": s.name,
            "status": status,
            "cached": False,
            "started": None,
            "ended": None,
            "duration": None,
            "attempts": 0,
            "parameters": {},
            "image": None,
            "error": None,
            "inputs": {},
            "outputs": {},
        }
        for s in planned
        if s.id not in recorded
    ]


@run.command(name="describe")
@click.argument("run_ref", metavar="RUN")
@click.option("--logs", "logs_step", metavar="STEP", help="Print the logs of this step instead.")
@json_option
def describe_run(run_ref: str, logs_step: str | None, as_json: bool) -> None:
    """Show run RUN (a name or id): status, times, code, stack and every step."""
    from conveyor.exceptions import NotFoundError

    client = _client()
    view = client.get_run(run_ref)
    if logs_step is not None:
        step = view.steps.get(logs_step)
        if step is None:
            raise NotFoundError(
                f"run {view.name!r} has no step {logs_step!r}", f"its steps are: {', '.join(view.steps) or '(none)'}"
            )
        if step.cached and step.record.original_step_run_id:
            original = client.store.get_step_run(step.record.original_step_run_id)
            source = client.get_run(original.run_id).name
            click.echo(
                f"conveyor: step {logs_step!r} came from the cache: these are the logs of its run in {source} "
                f"(conveyor run describe {source} --logs {original.step_id})",
                err=True,
            )
        click.echo(step.logs(), nl=False)
        return
    data = run_summary(view, view.pipeline_name)
    data["steps"] = [step_json(s) for s in view.steps.values()] + _unrecorded_steps(client, view)
    if as_json:
        emit_json(data)
        return
    code = "-"
    if data["code_commit"]:
        code = data["code_commit"] + (" (dirty)" if data["code_dirty"] else "")
    orchestrator = data["orchestrator"] + (
        f" (run {data['orchestrator_run_id']})" if data["orchestrator_run_id"] else ""
    )
    pairs = [
        ("Run", data["name"]),
        ("ID", data["id"]),
        ("Pipeline", data["pipeline"]),
        ("Status", data["status"]),
        ("Created", when(view.created)),
        ("Started", when(view.started)),
        ("Ended", when(view.ended)),
        ("Duration", duration(data["duration"])),
        ("Parameters", data["parameters"]),
        ("Code", code),
        ("Stack", data["stack"]),
        ("Orchestrator", orchestrator),
    ]
    if data["error"]:
        pairs.append(("Error", data["error"]))
    fields(pairs)
    heading("Steps")
    rows = []
    for s in data["steps"]:
        outputs = "\n".join(f"{k}: {v['id']}" for k, v in s["outputs"].items()) or "-"
        rows.append([s["step"], s["status"], "yes" if s["cached"] else "no", duration(s["duration"]), outputs])
    table(["STEP", "STATUS", "CACHED", "DURATION", "OUTPUTS (artifact id)"], rows, empty="(no steps ran)")
    failed = [s for s in data["steps"] if s["error"]]
    for s in failed:
        click.echo(f"{s['step']}: {s['error']}".splitlines()[0])
    if failed:
        click.echo(f"Logs: conveyor run describe {data['name']} --logs STEP")
