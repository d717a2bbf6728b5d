"""``conveyor pipeline ...`` and ``conveyor run ...``: run, export, deploy and inspect."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import click

from conveyor.cli._output import Col, duration, emit_json, iso, json_option, seconds, short_id, table, when_short

if TYPE_CHECKING:
    from conveyor.client import Client, PipelineRunView

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
@click.option("--tag", "-t", "tags", multiple=True, metavar="TAG", help="Only pipelines with this tag (repeatable).")
@json_option
def list_pipelines(tags: tuple[str, ...], as_json: bool) -> None:
    """List pipelines with their tags, number of runs and latest run."""
    client = _client()
    out = []
    for view in client.list_pipelines(tags=tags):
        runs = client.store.list_runs(view.id)
        last = runs[0] if runs else None
        out.append(
            {
                "id": view.id,
                "name": view.name,
                "created": iso(view.record.created),
                "tags": list(view.tags),
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
            ", ".join(p["tags"]) or "-",
        ]
        for p in out
    ]
    table(
        [
            Col("PIPELINE", fold=True),
            Col("RUNS", right=True),
            Col("LAST RUN", fold=True),
            "STATUS",
            Col("TAGS", fold=True),
        ],
        rows,
        empty="No pipelines with those tags." if tags else "No pipelines yet.",
    )


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
        "tags": list(run.tags),
        "error": run.error,
    }


@pipeline.command()
@click.argument("pipeline_name", metavar="[PIPELINE]", required=False)
@click.option("--limit", "-n", type=click.IntRange(min=1), help="Show at most this many runs.")
@click.option(
    "--tag", "-t", "tags", multiple=True, metavar="TAG", help="Only runs with this tag; repeatable (all of them)."
)
@json_option
def runs(pipeline_name: str | None, limit: int | None, tags: tuple[str, ...], as_json: bool) -> None:
    """List runs, newest first (of one PIPELINE, or of all).

    The ID column shows the start of each run's id: any unique start of 4 or
    more characters names the run, as does its name or `latest`.
    """
    client = _client()
    names = {p.id: p.name for p in client.store.list_pipelines()}
    views = client.list_runs(pipeline_name, limit, tags=tags)
    out = [run_summary(r, names.get(r.record.pipeline_id, "?")) for r in views]
    if as_json:
        emit_json(out)
        return
    rows = [
        [
            short_id(r["id"]),
            r["name"],
            r["pipeline"],
            r["status"],
            when_short(v.started),
            duration(r["duration"]),
            ", ".join(r["tags"]) or "-",
        ]
        for r, v in zip(out, views, strict=True)
    ]
    columns: list[str | Col] = [
        "ID",
        Col("RUN", fold=True),
        Col("PIPELINE", fold=True),
        "STATUS",
        "STARTED",
        Col("DURATION", right=True),
        Col("TAGS", fold=True, optional=True),
    ]
    if pipeline_name is not None:  # one pipeline: its name is in every row already
        columns.pop(2)
        rows = [row[:2] + row[3:] for row in rows]
    table(columns, rows, empty="No runs yet." if not tags else "No runs with those tags.")


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


_config_option = click.option(
    "--config", "-c", "config_path", type=click.Path(dir_okay=False), help="A YAML run config."
)


@pipeline.command(name="run")
@click.argument("ref")
@click.option("--stack", "-s", metavar="STACK", help="Run on this stack (default: the active one).")
@_config_option
@_param_option
def run_pipeline(ref: str, stack: str | None, config_path: str | None, params: tuple[str, ...]) -> None:
    """Run pipeline REF now and wait for it.

    REF is path/to/file.py:name, package.module:name (importable from the
    working folder), or the name of a pipeline that ran here before (its code
    is imported again from the module it ran from).
    """
    from conveyor.cli._parsing import parse_params
    from conveyor.client import PipelineRunView

    parameters = parse_params(params)
    run = _runnable(ref).with_options(config_path=config_path, stack=stack)(**parameters)
    if not isinstance(run, PipelineRunView):
        click.echo(f"Pipeline {ref!r} was deployed; no run started now ({run}).")
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
@_config_option
@_param_option
def export(ref: str, stack: str, output: str, config_path: str | None, params: tuple[str, ...]) -> None:
    """Compile pipeline REF for a stack's orchestrator and write its files (no run).

    REF is path/to/file.py:name, package.module:name, or the name of a
    pipeline that ran here before.
    """
    from conveyor._launch import export_pipeline
    from conveyor.cli._parsing import parse_params

    _importable_here()
    written = export_pipeline(
        ref, output, stack=stack, parameters=parse_params(params) or None, config_path=config_path
    )
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
@_config_option
@_param_option
def deploy(
    ref: str,
    stack: str,
    cron: str | None,
    interval: float | None,
    start_date: datetime | None,
    config_path: str | None,
    params: tuple[str, ...],
) -> None:
    """Submit pipeline REF to a stack's orchestrator, on a schedule or once.

    REF is path/to/file.py:name, package.module:name, or the name of a
    pipeline that ran here before.
    """
    from conveyor._launch import deploy_pipeline
    from conveyor.cli._parsing import parse_params

    schedule = _schedule(cron, interval, start_date)
    _importable_here()
    run_id = deploy_pipeline(
        ref, stack=stack, parameters=parse_params(params) or None, schedule=schedule, config_path=config_path
    )
    when_text = f"cron {cron!r}" if cron is not None else f"every {interval:g} s" if interval is not None else None
    if not isinstance(run_id, str):
        click.echo(f"Deployed pipeline {ref!r} on stack {stack!r}" + (f" ({when_text})." if when_text else "."))
        if run_id.where:
            click.echo(f"Where: {run_id.where}")
        if run_id.trigger:
            click.echo(f"Start a run: {run_id.trigger}")
        return
    run = _client().get_run(run_id)
    click.echo(f"Submitted run {run.name} on stack {stack!r}: {run.status}")
