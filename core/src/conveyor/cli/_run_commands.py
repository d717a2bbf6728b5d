"""``conveyor run ...``: describe, compare, tag and delete pipeline runs.

Wherever a run is named it may be its name, its id, a unique start of its
id (4 characters or more), or ``latest`` for the newest run.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import click

from conveyor.cli._output import (
    Col,
    duration,
    emit_json,
    fields,
    heading,
    iso,
    json_option,
    seconds,
    short_id,
    table,
    when,
)
from conveyor.cli._pipeline_commands import run_summary

if TYPE_CHECKING:
    from conveyor.client import ArtifactView, Client, PipelineRunView, StepRunView
    from conveyor.stores import HookInvocationRecord

_RUN_REF = "RUN is a run's name, id, a unique start of its id, or latest."


def _client() -> Client:
    from conveyor.client import Client

    return Client()


@click.group()
def run() -> None:
    """Inspect, compare, tag and delete pipeline runs."""


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
        "metadata": step.metadata,
        "image": step.image,
        "error": step.error,
        "inputs": {k: _artifact_ref(v) for k, v in step.inputs.items()},
        "outputs": {k: _artifact_ref(v) for k, v in step.outputs.items()},
    }


def _unrecorded_steps(client: Client, view: PipelineRunView) -> list[dict[str, Any]]:
    """Steps of the run's pipeline that have no step run yet (engines record a step when it starts)."""
    from conveyor.stores import RunStatus

    recorded = set(view.steps)
    status = "not run" if view.status in RunStatus.FINISHED else "pending"
    planned = client.deployment(view.deployment_id).pipeline.steps
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
            "metadata": {},
            "image": None,
            "error": None,
            "inputs": {},
            "outputs": {},
        }
        for s in planned
        if s.id not in recorded
    ]


def run_models_json(client: Client, view: PipelineRunView) -> list[dict[str, Any]]:
    """The model versions a run's steps worked in (``produced``) or loaded (``consumed``), with those steps."""
    step_ids = {s.id: s.step_id for s in view.steps.values()}
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for link in client.store.list_model_version_links(run_id=view.id):
        entry = out.setdefault(
            (link.role, link.model_version_id),
            {
                "role": link.role,
                "model": link.model_name,
                "version": link.version_number,
                "version_id": link.model_version_id,
                "steps": [],
            },
        )
        step = step_ids.get(link.step_run_id or "")
        if step is not None and step not in entry["steps"]:
            entry["steps"].append(step)
    return list(out.values())


def hook_json(record: HookInvocationRecord) -> dict[str, Any]:
    """A hook invocation as plain data."""
    return {
        "id": record.id,
        "step": record.step_id,
        "event": record.event,
        "position": record.position,
        "hook": record.hook,
        "status": record.status,
        "started": iso(record.started),
        "ended": iso(record.ended),
        "duration": record.duration,
        "error": record.error,
    }


def _compact(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def _print_logs(client: Client, view: PipelineRunView, logs_step: str) -> None:
    from conveyor.exceptions import NotFoundError

    step = view.steps.get(logs_step)
    if step is None:
        raise NotFoundError(
            f"run {view.name!r} has no step {logs_step!r}", f"its steps are: {', '.join(view.steps) or '(none)'}"
        )
    if step.cached and step.record.original_step_run_id:
        try:
            original = client.store.get_step_run(step.record.original_step_run_id)
            source = client.get_run(original.run_id).name
            note = (
                f"these are the logs of its run in {source} (conveyor run describe {source} --logs {original.step_id})"
            )
        except NotFoundError:
            note = "the run that ran it was deleted; these are the logs it kept"
        click.echo(f"conveyor: step {logs_step!r} came from the cache: {note}", err=True)
    click.echo(step.logs(), nl=False)


@run.command(name="describe")
@click.argument("run_ref", metavar="RUN")
@click.option("--logs", "logs_step", metavar="STEP", help="Print the logs of this step instead.")
@json_option
def describe_run(run_ref: str, logs_step: str | None, as_json: bool) -> None:
    """Show run RUN: status, times, code, stack, tags and every step.

    RUN is a run's name, id, a unique start of its id, or latest.
    """
    client = _client()
    view = client.get_run(run_ref)
    if logs_step is not None:
        _print_logs(client, view, logs_step)
        return
    data = run_summary(view, view.pipeline_name)
    data["links"] = dict((view.record.extra or {}).get("links") or {})
    data["steps"] = [step_json(s) for s in view.steps.values()] + _unrecorded_steps(client, view)
    data["models"] = run_models_json(client, view)
    data["hooks"] = [hook_json(h) for h in view.hooks]
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
        ("Tags", ", ".join(data["tags"]) or "-"),
        ("Code", code),
        ("Stack", data["stack"]),
        ("Orchestrator", orchestrator),
    ]
    if data["error"]:
        pairs.append(("Error", data["error"]))
    fields(pairs)
    if data["links"]:
        heading("Links")
        table(["STEP", "URL"], [[label, url] for label, url in sorted(data["links"].items())])
    heading("Steps")
    rows = []
    for s in data["steps"]:
        outputs = "\n".join(f"{k}: {short_id(v['id'])}" for k, v in s["outputs"].items()) or "-"
        rows.append([s["step"], s["status"], "yes" if s["cached"] else "no", duration(s["duration"]), outputs])
    table(
        [
            Col("STEP", fold=True),
            "STATUS",
            "CACHED",
            Col("DURATION", right=True),
            Col("OUTPUTS (artifact id)", fold=True),
        ],
        rows,
        empty="(no steps ran)",
    )
    _print_step_parameters(data)
    _print_step_metadata(data)
    if data["models"]:
        heading("Models")
        table(
            ["MODEL", "VERSION", "ROLE", "STEPS"],
            [
                [m["model"], m["version"], "used" if m["role"] == "consumed" else "produced", ", ".join(m["steps"])]
                for m in data["models"]
            ],
        )
    failed = [s for s in data["steps"] if s["error"]]
    for s in failed:
        click.echo(f"{s['step']}: {s['error']}".splitlines()[0])
    if failed:
        click.echo(f"Logs: conveyor run describe {data['name']} --logs STEP")
    if data["hooks"]:
        heading("Hooks")
        hook_rows = [
            [
                h["step"] or "(pipeline)",
                f"on_{h['event']}",
                h["hook"],
                h["status"],
                duration(h["duration"]),
                h["error"] or "",
            ]
            for h in data["hooks"]
        ]
        table(["FOR", "EVENT", "HOOK", "STATUS", "DURATION", "ERROR"], hook_rows)


def _print_step_parameters(data: dict[str, Any]) -> None:
    """The parameters each step ran with; one that differs from the pipeline parameter of its name says so."""
    pipeline_params = data["parameters"]
    lines = []
    for s in data["steps"]:
        if not s["parameters"]:
            continue
        shown = []
        for name, value in sorted(s["parameters"].items()):
            text = f"{name}={_compact(value)}"
            if name in pipeline_params and pipeline_params[name] != value:
                text += f" (the pipeline's {name} is {_compact(pipeline_params[name])})"
            shown.append(text)
        lines.append(f"  {s['step']}: {', '.join(shown)}")
    if lines:
        heading("Step parameters")
        for line in lines:
            click.echo(line)


def _print_step_metadata(data: dict[str, Any]) -> None:
    """What each step logged with log_metadata, one line per step."""
    lines = [
        f"  {s['step']}: " + ", ".join(f"{k}={_compact(v)}" for k, v in sorted(s["metadata"].items()))
        for s in data["steps"]
        if s["metadata"]
    ]
    if lines:
        heading("Logged metadata")
        for line in lines:
            click.echo(line)


# -- tags ------------------------------------------------------------------------------
@run.command()
@click.argument("run_ref", metavar="RUN")
@click.argument("tags", nargs=-1, required=True, metavar="TAG...")
@click.option("--untag", is_flag=True, help="Remove these tags instead of adding them.")
def tag(run_ref: str, tags: tuple[str, ...], untag: bool) -> None:
    """Add TAGs to run RUN (or remove them with --untag).

    RUN is a run's name, id, a unique start of its id, or latest. Find
    tagged runs with `conveyor pipeline runs --tag TAG`.
    """
    client = _client()
    view = client.get_run(run_ref)
    now = client.tag_run(view.id, remove=tags) if untag else client.tag_run(view.id, tags)
    click.echo(f"Run {view.name} tags: {', '.join(now) or '(none)'}")


# -- delete ----------------------------------------------------------------------------
@run.command()
@click.argument("run_refs", nargs=-1, required=True, metavar="RUN...")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.option("--force", is_flag=True, help="Delete runs that are still running too (their steps then fail).")
def delete(run_refs: tuple[str, ...], yes: bool, force: bool) -> None:
    """Delete runs: their records, step runs, tags and logs.

    RUN is a run's name, id, a unique start of its id, or latest. The
    artifacts they made stay while other runs use them; `conveyor gc` removes
    the files of the others.
    """
    from conveyor.exceptions import StoreError
    from conveyor.stores import RunStatus

    client = _client()
    views = {v.id: v for v in (client.get_run(ref) for ref in run_refs)}  # every name is checked before asking
    running = [v for v in views.values() if v.status == RunStatus.RUNNING]
    if running and not force:
        raise StoreError(f"run {running[0].name!r} is running", "stop it first, or delete it anyway with --force")
    if not yes:
        names = ", ".join(v.name for v in views.values())
        click.confirm(f"Delete {len(views)} run{'s' if len(views) != 1 else ''} ({names})?", abort=True)
    for view in views.values():
        client.delete_run(view.id, force=force)
        click.echo(f"Deleted run {view.name}.")
    click.echo("Free the files of artifacts no run uses any more: conveyor gc --dry-run, then conveyor gc")


# -- compare ---------------------------------------------------------------------------
def _labels(count: int) -> list[str]:
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    return [letters[i] if i < len(letters) else f"R{i + 1}" for i in range(count)]


def _row(key: str, values: list[Any], *, marked: bool = True) -> dict[str, Any]:
    present = [json.dumps(v, sort_keys=True) for v in values]
    return {"key": key, "values": values, "differs": marked and len(set(present)) > 1}


def logged_metadata(run: PipelineRunView) -> dict[str, Any]:
    """Metadata the run's steps logged with ``log_metadata``, as ``{"step.key": value}``."""
    return {f"{sid}.{k}": v for sid, s in run.steps.items() for k, v in sorted(s.metadata.items())}


def compare_runs(views: list[PipelineRunView]) -> dict[str, Any]:
    """Parameters, step parameters, output hashes, durations and logged metadata of runs, side by side.

    Each section is a list of ``{"key", "values" (one per run, None where a
    run has none), "differs"}``. Durations are shown, never marked: two runs
    never take exactly as long.
    """
    labels = _labels(len(views))
    runs = [
        {
            "label": label,
            "id": v.id,
            "name": v.name,
            "pipeline": v.pipeline_name,
            "status": v.status,
            "duration": v.duration,
            "tags": list(v.tags),
        }
        for label, v in zip(labels, views, strict=True)
    ]

    def section(per_run: list[dict[str, Any]], *, marked: bool = True) -> list[dict[str, Any]]:
        keys: list[str] = []
        for values in per_run:
            keys += [k for k in values if k not in keys]
        return [_row(k, [values.get(k) for values in per_run], marked=marked) for k in keys]

    steps = [v.steps for v in views]
    step_params = [
        {f"{sid}.{k}": val for sid, s in st.items() for k, val in sorted(s.parameters.items())} for st in steps
    ]
    outputs = [
        {f"{sid}.{name}": art.content_hash for sid, s in st.items() for name, art in s.outputs.items()} for st in steps
    ]
    durations = [
        {"(run)": v.duration, **{sid: ("cached" if s.cached else seconds(s.started, s.ended)) for sid, s in st.items()}}
        for v, st in zip(views, steps, strict=True)
    ]
    return {
        "runs": runs,
        "parameters": section([dict(v.parameters) for v in views]),
        "step_parameters": section(step_params),
        "outputs": section(outputs),
        "durations": section(durations, marked=False),
        "metadata": section([logged_metadata(v) for v in views]),
    }


def _cell(value: Any, kind: str) -> str:
    if value is None:
        return "-"
    if kind == "outputs":
        return short_id(value)
    if kind == "durations":
        return value if isinstance(value, str) else duration(value)
    return _compact(value)


@run.command()
@click.argument("run_refs", nargs=-1, required=True, metavar="RUN RUN...")
@json_option
def compare(run_refs: tuple[str, ...], as_json: bool) -> None:
    """Compare runs side by side: parameters, output hashes, durations, metadata.

    RUN is a run's name, id, a unique start of its id, or latest. Rows where
    the runs differ are marked with *; an output whose hash is the same in
    two runs holds the same bytes.
    """
    if len(run_refs) < 2:
        raise click.UsageError("give two runs or more: conveyor run compare RUN RUN...")
    client = _client()
    views = [client.get_run(ref) for ref in run_refs]
    data = compare_runs(views)
    if as_json:
        emit_json(data)
        return
    labels = [r["label"] for r in data["runs"]]
    table(
        ["", Col("RUN", fold=True), "ID", "STATUS", Col("DURATION", right=True)],
        [[r["label"], r["name"], short_id(r["id"]), r["status"], duration(r["duration"])] for r in data["runs"]],
    )
    titles = {
        "parameters": "Parameters",
        "step_parameters": "Step parameters",
        "outputs": "Outputs (content hash)",
        "durations": "Durations",
        "metadata": "Metadata",
    }
    for kind, title in titles.items():
        rows = data[kind]
        if not rows and kind == "step_parameters":
            continue
        heading(title)
        if not rows:
            click.echo("(none)" if kind != "metadata" else "(none logged)")
            continue
        table(
            ["", Col("KEY", fold=True), *(Col(label, fold=True) for label in labels)],
            [["*" if r["differs"] else "", r["key"], *(_cell(v, kind) for v in r["values"])] for r in rows],
        )
    differing = sum(r["differs"] for kind in titles for r in data[kind])
    click.echo()
    click.echo(f"{differing} difference{'s' if differing != 1 else ''} (marked *)." if differing else "No differences.")
