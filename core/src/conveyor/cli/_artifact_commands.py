"""``conveyor artifact ...``: list, describe and show artifact versions."""

from __future__ import annotations

import os
import tempfile
from typing import TYPE_CHECKING, Any

import click

from conveyor.cli._output import compact, emit_json, fields, heading, iso, json_option, table, when

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


@artifact.command(name="list")
@click.option("--name", help="Only versions of the artifact with this name.")
@json_option
def list_artifacts(name: str | None, as_json: bool) -> None:
    """List artifact versions, newest first."""
    client = _client()
    views = client.list_artifacts(name)
    out = [
        {
            "id": v.id,
            "name": v.name,
            "version": v.version,
            "data_type": v.data_type,
            "uri": v.uri,
            "content_hash": v.content_hash,
            "created": iso(v.created),
        }
        for v in views
    ]
    if as_json:
        emit_json(out)
        return
    rows = [
        [a["id"], a["name"], a["version"], a["data_type"], when(v.created)] for a, v in zip(out, views, strict=True)
    ]
    table(["ID", "NAME", "VERSION", "TYPE", "CREATED"], rows, empty="No artifacts yet.")


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

    fields(
        [
            ("Artifact", f"{data['name']} (version {data['version']})"),
            ("ID", data["id"]),
            ("URI", data["uri"]),
            ("Type", data["data_type"]),
            ("Materializer", data["materializer"]),
            ("Content hash", data["content_hash"]),
            ("Created", when(view.created)),
            ("Producer", step_text(data["producer"])),
        ]
    )
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
    client = _client()
    view = client.get_artifact(artifact_id)
    visualizations = view.visualizations
    if visualizations and not client.artifact_store_for(view.uri).exists(view.uri):
        from conveyor.exceptions import StoreError

        raise StoreError(
            f"the files of artifact {view.name} v{view.version} are gone from {view.uri}",
            "run the step that made it again",
        )
    if not visualizations:
        text = repr(view.load(allow_unsafe=allow_unsafe))
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
            with store.open(uri, "rb") as f:
                text = f.read().decode("utf-8", "replace")
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
