"""``conveyor model ...``: models, their versions, aliases and the history of alias moves."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from conveyor.cli._output import compact, emit_json, fields, heading, iso, json_option, table, when

if TYPE_CHECKING:
    from conveyor.client import Client, ModelVersionView, ModelView
    from conveyor.stores import ModelAliasEventRecord


def _client() -> Client:
    from conveyor.client import Client

    return Client()


@click.group()
def model() -> None:
    """Inspect models and their versions; move aliases (production, staging, ...)."""


def _model_json(view: ModelView, versions: list[ModelVersionView]) -> dict[str, Any]:
    return {
        "id": view.id,
        "name": view.name,
        "description": view.description,
        "tags": view.tags,
        "license": view.license,
        "created": iso(view.created),
        "latest_version": view.record.latest_version or None,
        "aliases": {alias: v.number for v in versions for alias in v.aliases},
    }


@model.command(name="list")
@json_option
def list_models(as_json: bool) -> None:
    """List models with their newest version and aliases."""
    client = _client()
    out = [_model_json(m, m.versions) for m in client.list_models()]
    if as_json:
        emit_json(out)
        return
    rows = [
        [
            m["name"],
            m["latest_version"] or "-",
            ", ".join(f"{a} -> {n}" for a, n in sorted(m["aliases"].items())) or "-",
            ", ".join(m["tags"]) or "-",
        ]
        for m in out
    ]
    table(["MODEL", "LATEST", "ALIASES", "TAGS"], rows, empty="No models yet.")


def _version_row(version: ModelVersionView, run_names: dict[str, str], client: Client) -> dict[str, Any]:
    run_id = version.record.run_id
    if run_id is not None and run_id not in run_names:
        run_names[run_id] = client.store.get_run(run_id).name
    return {
        "id": version.id,
        "model": version.model_name,
        "number": version.number,
        "name": version.name,
        "aliases": version.aliases,
        "created": iso(version.created),
        "run": run_names.get(run_id) if run_id else None,
    }


def _versions_table(rows: list[dict[str, Any]]) -> None:
    table(
        ["VERSION", "NAME", "ALIASES", "CREATED", "RUN"],
        [
            [v["number"], v["name"] or "-", ", ".join(v["aliases"]) or "-", _when_text(v["created"]), v["run"] or "-"]
            for v in rows
        ],
        empty="No versions yet.",
    )


def _when_text(value: str | None) -> str:
    from datetime import datetime

    return when(datetime.fromisoformat(value)) if value else "-"


@model.command()
@click.argument("name", metavar="MODEL")
@json_option
def describe(name: str, as_json: bool) -> None:
    """Show MODEL: what describes it, its aliases and its versions."""
    client = _client()
    view = client.get_model(name)
    versions = view.versions
    data = _model_json(view, versions)
    run_names: dict[str, str] = {}
    data["versions"] = [_version_row(v, run_names, client) for v in versions]
    if as_json:
        emit_json(data)
        return
    fields(
        [
            ("Model", data["name"]),
            ("ID", data["id"]),
            ("Description", data["description"]),
            ("Tags", ", ".join(data["tags"]) or "-"),
            ("License", data["license"]),
            ("Created", when(view.created)),
            ("Latest version", data["latest_version"]),
            ("Aliases", ", ".join(f"{a} -> {n}" for a, n in sorted(data["aliases"].items())) or "-"),
        ]
    )
    heading("Versions")
    _versions_table(data["versions"])


@model.group()
def version() -> None:
    """List and describe versions of a model; move their aliases; show the history of the moves."""


@version.command(name="list")
@click.argument("name", metavar="MODEL")
@json_option
def list_versions(name: str, as_json: bool) -> None:
    """List the versions of MODEL, by number."""
    client = _client()
    run_names: dict[str, str] = {}
    rows = [_version_row(v, run_names, client) for v in client.list_model_versions(name)]
    if as_json:
        emit_json(rows)
        return
    _versions_table(rows)


def version_json(client: Client, view: ModelVersionView) -> dict[str, Any]:
    """A model version as plain data: its artifacts, the steps linked to it, what they logged, who used it."""
    from conveyor.stores import ModelLinkRole

    run_names: dict[str, str] = {}
    step_ids: dict[str, str] = {}

    def run_name(run_id: str) -> str:
        if run_id not in run_names:
            run_names[run_id] = client.store.get_run(run_id).name
        return run_names[run_id]

    def step_id(step_run_id: str | None) -> str | None:
        if step_run_id is None:
            return None
        if step_run_id not in step_ids:
            step_ids[step_run_id] = client.store.get_step_run(step_run_id).step_id
        return step_ids[step_run_id]

    steps: dict[tuple[str, str | None, str], dict[str, Any]] = {}
    for link in view.links:
        entry = steps.setdefault(
            (link.role, link.step_run_id, link.run_id),
            {
                "role": link.role,
                "run": run_name(link.run_id),
                "run_id": link.run_id,
                "step": step_id(link.step_run_id),
                "step_run_id": link.step_run_id,
                "artifacts": {},
            },
        )
        if link.artifact_id is not None and link.name is not None:
            entry["artifacts"][link.name] = link.artifact_id
    data = _version_row(view, run_names, client)
    data["metadata"] = view.metadata
    data["artifacts"] = {
        name: {"id": a.id, "name": a.name, "version": a.version, "data_type": a.data_type, "uri": a.uri}
        for name, a in view.artifacts.items()
    }
    data["steps"] = [s for s in steps.values() if s["role"] == ModelLinkRole.PRODUCED]
    data["used_by"] = [s for s in steps.values() if s["role"] == ModelLinkRole.CONSUMED]
    return data


@version.command(name="describe")
@click.argument("name", metavar="MODEL")
@click.argument("version_ref", metavar="VERSION")
@json_option
def describe_version(name: str, version_ref: str, as_json: bool) -> None:
    """Show VERSION of MODEL (a number, latest, an alias or a name): artifacts, runs, steps, metadata, users."""
    client = _client()
    view = client.get_model_version(name, version_ref)
    data = version_json(client, view)
    if as_json:
        emit_json(data)
        return
    fields(
        [
            ("Model", data["model"]),
            ("Version", data["number"]),
            ("Name", data["name"]),
            ("ID", data["id"]),
            ("Aliases", ", ".join(data["aliases"]) or "-"),
            ("Created", when(view.created)),
            ("Created by run", data["run"]),
        ]
    )
    click.echo("Metadata:" + ("" if data["metadata"] else " {}"))
    for key, value in sorted(data["metadata"].items()):
        click.echo(f"  {key}: {compact(value)}")
    heading("Artifacts")
    table(
        ["NAME", "VERSION", "TYPE", "ID"],
        [[n, a["version"], a["data_type"], a["id"]] for n, a in sorted(data["artifacts"].items())],
        empty="(none)",
    )
    heading("Steps")
    table(
        ["RUN", "STEP", "ARTIFACTS"],
        [[s["run"], s["step"] or "-", ", ".join(sorted(s["artifacts"])) or "-"] for s in data["steps"]],
        empty="(none)",
    )
    if data["used_by"]:
        heading("Used by")
        table(
            ["RUN", "STEP", "INPUT", "ARTIFACT"],
            [
                [s["run"], s["step"] or "-", name, artifact_id]
                for s in data["used_by"]
                for name, artifact_id in sorted(s["artifacts"].items())
            ],
        )


@version.group()
def alias() -> None:
    """Move the aliases of a model's versions (each move is recorded)."""


def _event_json(event: ModelAliasEventRecord) -> dict[str, Any]:
    return {
        "model": event.model_name,
        "alias": event.alias,
        "from": event.from_version,
        "to": event.to_version,
        "by": event.moved_by,
        "time": iso(event.created),
    }


@alias.command(name="set")
@click.argument("name", metavar="MODEL")
@click.argument("version_ref", metavar="VERSION")
@click.argument("alias_name", metavar="ALIAS")
def set_alias(name: str, version_ref: str, alias_name: str) -> None:
    """Point ALIAS of MODEL at VERSION (a number, latest, an alias, a name or an id); the move is recorded."""
    client = _client()
    event = client.set_model_version_alias(name, version_ref, alias_name)
    if event is None:
        target = client.get_model_version(name, alias_name)
        click.echo(f"Alias {alias_name!r} of model {name!r} points at version {target.number} already.")
        return
    was = f" (was version {event.from_version})" if event.from_version is not None else ""
    click.echo(f"Alias {event.alias!r} of model {event.model_name!r} now points at version {event.to_version}{was}.")


@alias.command(name="remove")
@click.argument("name", metavar="MODEL")
@click.argument("alias_name", metavar="ALIAS")
def remove_alias(name: str, alias_name: str) -> None:
    """Remove ALIAS of MODEL; the removal is recorded."""
    event = _client().remove_model_version_alias(name, alias_name)
    assert event is not None
    click.echo(f"Removed alias {event.alias!r} of model {event.model_name!r} (was version {event.from_version}).")


@version.command()
@click.argument("name", metavar="MODEL")
@click.option("--alias", "alias_name", metavar="ALIAS", help="Only the moves of this alias.")
@json_option
def history(name: str, alias_name: str | None, as_json: bool) -> None:
    """Show who moved which alias of MODEL when, from which version to which (oldest first)."""
    events = [_event_json(e) for e in _client().model_alias_history(name, alias_name)]
    if as_json:
        emit_json(events)
        return
    table(
        ["TIME", "ALIAS", "FROM", "TO", "BY"],
        [
            [
                _when_text(e["time"]),
                e["alias"],
                e["from"] or "-",
                e["to"] if e["to"] is not None else "(removed)",
                e["by"],
            ]
            for e in events
        ],
        empty="No alias was ever set.",
    )
