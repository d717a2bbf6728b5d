"""``conveyor artifact ...``: list, describe and show artifact versions."""

from __future__ import annotations

import os
import tempfile
from typing import TYPE_CHECKING, Any

import click

from conveyor.cli._output import (
    Col,
    compact,
    emit_json,
    fields,
    heading,
    iso,
    json_option,
    short_id,
    table,
    when,
    when_short,
)

if TYPE_CHECKING:
    from conveyor.client import ArtifactView, Client, StepRunView

_TEXT_KINDS = frozenset({"text", "markdown", "md", "csv", "html", "json", "txt"})
_REPR_LIMIT = 2000


def _client() -> Client:
    from conveyor.client import Client

    return Client()


@click.group()
def artifact() -> None:
    """Inspect and show artifacts (the saved outputs of steps)."""


def display_name(view: ArtifactView) -> str:
    """An artifact's name for a table: the output's name when the name is scoped (``p::s::model``)."""
    return view.name.rsplit("::", 1)[-1]


def _short_type(data_type: str) -> str:
    return data_type.rpartition(":")[2] or data_type


@artifact.command(name="list")
@click.option("--name", help="Only this artifact name, or output name (model finds train::fit::model).")
@click.option("--pipeline", "-P", "pipeline_name", metavar="PIPELINE", help="Only artifacts its runs made.")
@click.option("--step", metavar="STEP", help="Only artifacts this step call (its id) made.")
@click.option("--limit", "-n", type=click.IntRange(min=1), help="Show at most this many.")
@click.option("--all", "show_all", is_flag=True, help="Include artifacts whose files were removed.")
@json_option
def list_artifacts(
    name: str | None, pipeline_name: str | None, step: str | None, limit: int | None, show_all: bool, as_json: bool
) -> None:
    """List artifact versions, newest first, with the pipeline and step that made them.

    An output is versioned as PIPELINE::STEP::OUTPUT unless it was named with
    ArtifactConfig(name=...) (or saved with conveyor.save_artifact): the NAME
    column shows the output's part of a scoped name. The ID column shows the
    start of each id: any unique start of 4 or more characters names it.
    """
    client = _client()
    views = client.list_artifacts(name, pipeline=pipeline_name, step=step, limit=limit, removed=show_all)
    out = [
        {
            "id": v.id,
            "name": v.name,
            "version": v.version,
            "pipeline": v.pipeline_name,
            "step": v.step_id,
            "data_type": v.data_type,
            "uri": v.uri,
            "content_hash": v.content_hash,
            "size": v.size,
            "created": iso(v.created),
            "removed": iso(v.removed),
        }
        for v in views
    ]
    if as_json:
        emit_json(out)
        return
    rows = [
        [
            short_id(v.id),
            display_name(v) + (" (removed)" if v.removed else ""),
            v.version,
            v.pipeline_name or "-",
            v.step_id or "-",
            _short_type(v.data_type),
            when_short(v.created),
        ]
        for v in views
    ]
    table(
        [
            "ID",
            Col("NAME", fold=True),
            Col("VER", right=True),
            Col("PIPELINE", fold=True),
            Col("STEP", fold=True),
            Col("TYPE", fold=True),
            "CREATED",
        ],
        rows,
        empty="No artifacts yet." if not (name or pipeline_name or step) else "No artifacts match.",
    )


def _step_ref(client: Client, step: StepRunView, names: dict[str, str]) -> dict[str, Any]:
    run_id = step.record.run_id
    if run_id not in names:
        names[run_id] = client.store.get_run(run_id).name
    return {"step_run_id": step.id, "step": step.step_id, "run": names[run_id], "run_id": run_id}


def artifact_json(client: Client, view: ArtifactView) -> dict[str, Any]:
    """An artifact version as plain data, with its producer and consumers."""
    names: dict[str, str] = {}
    producer = view.producer
    return {
        "id": view.id,
        "name": view.name,
        "version": view.version,
        "uri": view.uri,
        "data_type": view.data_type,
        "materializer": view.materializer,
        "content_hash": view.content_hash,
        "metadata": view.metadata,
        "created": iso(view.created),
        "pipeline": view.pipeline_name,
        "step": view.step_id,
        "size": view.size,
        "removed": iso(view.removed),
        "producer": _step_ref(client, producer, names) if producer is not None else None,
        "consumers": [_step_ref(client, s, names) for s in view.consumers],
        "visualizations": [{"uri": uri, "kind": kind} for uri, kind in view.visualizations.items()],
    }


@artifact.command()
@click.argument("artifact_id", metavar="ID")
@json_option
def describe(artifact_id: str, as_json: bool) -> None:
    """Show artifact version ID: where it is, its type, metadata and lineage."""
    client = _client()
    view = client.get_artifact(artifact_id)
    data = artifact_json(client, view)
    if as_json:
        emit_json(data)
        return

    def step_text(ref: dict[str, Any] | None) -> str:
        return "-" if ref is None else f"step {ref['step']} of run {ref['run']}"

    pairs = [
        ("Artifact", f"{data['name']} (version {data['version']})"),
        ("ID", data["id"]),
        ("URI", data["uri"]),
        ("Type", data["data_type"]),
        ("Materializer", data["materializer"]),
        ("Content hash", data["content_hash"]),
        ("Size", _size(data["size"])),
        ("Created", when(view.created)),
        (
            "Made by",
            f"step {data['step']} of pipeline {data['pipeline']}" if data["pipeline"] else "conveyor.save_artifact",
        ),
        ("Producer", step_text(data["producer"])),
    ]
    if data["removed"]:
        pairs.append(("Removed", f"{when(view.removed)} (its files are gone; the record stays)"))
    fields(pairs)
    click.echo("Consumers:" + ("" if data["consumers"] else " -"))
    for ref in data["consumers"]:
        click.echo(f"  {step_text(ref)}")
    click.echo("Metadata:" + ("" if data["metadata"] else " {}"))
    for key, value in sorted(data["metadata"].items()):
        click.echo(f"  {key}: {compact(value)}")
    if data["visualizations"]:
        heading("Visualizations")
        table(["KIND", "URI"], [[v["kind"], v["uri"]] for v in data["visualizations"]])
        click.echo(f"Show them: conveyor artifact show {data['id']}")


@artifact.command()
@click.argument("artifact_id", metavar="ID")
@click.option("--open", "open_", is_flag=True, help="Open images (and HTML) with the system's viewer.")
@click.option(
    "--allow-unsafe",
    is_flag=True,
    help="Load with a pickle materializer (runs code stored in the artifact): only for stores you trust.",
)
def show(artifact_id: str, open_: bool, allow_unsafe: bool) -> None:
    """Print the visualizations of artifact ID; without any, its loaded value.

    Text, Markdown, CSV and HTML views print as text; an image prints its path
    (or opens with --open).
    """
    from conveyor.exceptions import StoreError

    client = _client()
    view = client.get_artifact(artifact_id)
    gone = view.files_gone()
    if gone is not None:
        raise StoreError(gone, "run the step that made it again")
    visualizations = view.visualizations
    if not visualizations:
        try:
            value = view.load(allow_unsafe=allow_unsafe)
        except OSError as exc:  # a file of it went missing or unreadable since it was saved
            raise StoreError(
                f"artifact {view.name} v{view.version} cannot be read from {view.uri}: {exc.strerror or exc}",
                "run the step that made it again",
            ) from None
        text = repr(value)
        if len(text) > _REPR_LIMIT:
            text = text[:_REPR_LIMIT] + f"... ({len(text) - _REPR_LIMIT} more characters)"
        click.echo(text)
        return
    many = len(visualizations) > 1
    for uri, kind in visualizations.items():
        store = client.artifact_store_for(uri)
        if many:
            click.echo(click.style(f"# {kind}: {uri}", bold=True))
        if open_ and kind.lower() not in _TEXT_KINDS - {"html"}:
            path = store.local_path(uri) or _download(store, uri)
            click.launch(path)
            click.echo(f"Opened {path}")
        elif kind.lower() in _TEXT_KINDS:
            try:
                with store.open(uri, "rb") as f:
                    text = f.read().decode("utf-8", "replace")
            except OSError as exc:
                raise StoreError(
                    f"view {uri} of artifact {view.name} v{view.version} is gone: {exc.strerror or exc}"
                ) from None
            click.echo(text, nl=not text.endswith("\n"))
        else:
            click.echo(uri)


def _download(store: Any, uri: str) -> str:
    """A local copy of a remote file, for a viewer to open."""
    suffix = os.path.splitext(uri)[1]
    fd, path = tempfile.mkstemp(prefix="conveyor-", suffix=suffix)
    with os.fdopen(fd, "wb") as out, store.open(uri, "rb") as f:
        out.write(f.read())
    return path


def _size(value: int | None) -> str:
    """Bytes for people."""
    if value is None:
        return "-"
    size = float(value)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{value} B"


@artifact.command()
@click.argument("artifact_id", metavar="ID")
@click.option("--force", is_flag=True, help="Remove its files even though runs that are kept use it.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
def delete(artifact_id: str, force: bool, yes: bool) -> None:
    """Remove the files of artifact version ID (its record stays, marked removed).

    Refused while a kept run made, read or reused it, unless --force: delete
    those runs first (conveyor run delete), or use conveyor gc after.
    """
    client = _client()
    view = client.get_artifact(artifact_id)
    if not force:
        client.check_artifact_unused(view.id)  # refused before asking
    if not yes:
        click.confirm(f"Remove the files of artifact {view.name} v{view.version} ({_size(view.size)})?", abort=True)
    client.delete_artifact(view.id, force=force)
    click.echo(f"Removed the files of artifact {view.name} v{view.version}.")


@click.command()
@click.option("--dry-run", "-n", is_flag=True, help="Only print what would be removed and how much it frees.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
def gc(dry_run: bool, yes: bool) -> None:
    """Remove the files of artifacts that no kept run uses (their runs were deleted).

    Their records stay, marked removed, so version numbers are never reused.
    Values saved with conveyor.save_artifact stay until `conveyor artifact
    delete`. Leftovers of killed saves go too. Run it with --dry-run first.
    """
    client = _client()
    found = client.collect_garbage(dry_run=True)
    for view in found.artifacts:
        click.echo(f"{short_id(view.id)}  {view.name} v{view.version}  {_size(view.size)}")
    what = f"{len(found.artifacts)} artifact{'s' if len(found.artifacts) != 1 else ''} ({_size(found.bytes)})"
    if dry_run:
        click.echo(f"Would remove the files of {what}.")
        return
    if found.artifacts and not yes:
        click.confirm(f"Remove the files of {what}?", abort=True)
    done = client.collect_garbage()
    line = f"Removed the files of {len(done.artifacts)} artifact{'s' if len(done.artifacts) != 1 else ''}"
    line += f" ({_size(done.bytes)})"
    if done.leftovers:
        line += f" and {done.leftovers} leftover folder{'s' if done.leftovers != 1 else ''} of killed saves"
    click.echo(line + ".")
