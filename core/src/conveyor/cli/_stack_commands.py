"""``conveyor stack ...``: register, inspect, switch and change stacks."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from conveyor.cli._output import emit_json, fields, heading, iso, json_option, table, when

if TYPE_CHECKING:
    from conveyor.client import Client
    from conveyor.stores import StackRecord

# (component type, long option, short option); the order stacks are shown in.
_TYPES = (
    ("orchestrator", "--orchestrator", "-o"),
    ("artifact_store", "--artifact-store", "-a"),
    ("container_registry", "--container-registry", "-c"),
    ("image_builder", "--image-builder", "-i"),
    ("step_operator", "--step-operator", "-s"),
    ("experiment_tracker", "--experiment-tracker", "-e"),
    ("data_validator", "--data-validator", "-d"),
    ("model_deployer", "--model-deployer", "-m"),
    ("alerter", "--alerter", "-l"),
)
_OPTIONAL = (
    "container_registry",
    "image_builder",
    "step_operator",
    "experiment_tracker",
    "data_validator",
    "model_deployer",
    "alerter",
)


def _client() -> Client:
    from conveyor.client import Client

    return Client()


def _component_options(func: Callable[..., Any]) -> Callable[..., Any]:
    for ctype, long, short in reversed(_TYPES):
        func = click.option(long, short, ctype, metavar="NAME", help=f"The {long[2:]} component.")(func)
    return func


def stack_json(record: StackRecord, active: str) -> dict[str, Any]:
    """A stack as plain data."""
    return {
        "id": record.id,
        "name": record.name,
        "active": record.name == active,
        "components": {
            t: {"id": c.id, "name": c.name, "flavor": c.flavor, "config": c.config}
            for t, c in sorted(record.components.items())
        },
        "created": iso(record.created),
        "updated": iso(record.updated),
    }


def _member(record: StackRecord, ctype: str) -> str:
    comp = record.components.get(ctype)
    return f"{comp.name} ({comp.flavor})" if comp is not None else ""


@click.group()
def stack() -> None:
    """Register, inspect and switch stacks.

    A stack is the set of components a pipeline runs on: an orchestrator and
    an artifact store, and optionally a container registry, an image builder,
    a step operator, an experiment tracker, a data validator, a model
    deployer and an alerter.
    """


@stack.command()
@click.argument("name")
@_component_options
@click.option("--set", "activate", is_flag=True, help="Make it the active stack.")
def register(name: str, activate: bool, **components: str | None) -> None:
    """Register a stack NAME from registered components.

    \b
    Example:
      conveyor stack register airflow -o airflow -a s3 -c registry -i docker --set
    """
    client = _client()
    chosen = {t: n for t, n in components.items() if n is not None}
    client.register_stack(name, chosen)
    click.echo(f"Registered stack {name!r}.")
    if activate:
        client.activate_stack(name)
        click.echo(f"Active stack: {name}")


@stack.command(name="list")
@json_option
def list_stacks(as_json: bool) -> None:
    """List stacks; the active one is marked with *."""
    client = _client()
    active = client.active_stack_name
    records = client.list_stacks()
    if as_json:
        emit_json([stack_json(r, active) for r in records])
        return
    columns = ["ACTIVE", "STACK", *(long[2:].upper().replace("-", " ") for _, long, _ in _TYPES)]
    rows = [["*" if r.name == active else "", r.name, *(_member(r, t) for t, _, _ in _TYPES)] for r in records]
    table(columns, rows, empty="No stacks.")


@stack.command()
@click.argument("name", required=False)
@json_option
def describe(name: str | None, as_json: bool) -> None:
    """Show a stack's components and their configs (default: the active stack)."""
    client = _client()
    active = client.active_stack_name
    record = client.get_stack(name)
    if as_json:
        emit_json(stack_json(record, active))
        return
    fields(
        [
            ("Stack", record.name + ("  (active)" if record.name == active else "")),
            ("ID", record.id),
            ("Created", when(record.created)),
            ("Updated", when(record.updated)),
        ]
    )
    heading("Components")
    rows = []
    for ctype, long, _ in _TYPES:
        comp = record.components.get(ctype)
        if comp is not None:
            rows.append([long[2:], comp.name, comp.flavor, comp.config])
    table(["TYPE", "NAME", "FLAVOR", "CONFIG"], rows)


@stack.command(name="set")
@click.argument("name")
def set_stack(name: str) -> None:
    """Make stack NAME the active stack of this repository."""
    client = _client()
    client.activate_stack(name)
    click.echo(f"Active stack: {name}")


@stack.command()
@click.argument("name")
@_component_options
@click.option("--remove-container-registry", is_flag=True, help="Take the container registry out.")
@click.option("--remove-image-builder", is_flag=True, help="Take the image builder out.")
@click.option("--remove-step-operator", is_flag=True, help="Take the step operator out.")
@click.option("--remove-experiment-tracker", is_flag=True, help="Take the experiment tracker out.")
@click.option("--remove-data-validator", is_flag=True, help="Take the data validator out.")
@click.option("--remove-model-deployer", is_flag=True, help="Take the model deployer out.")
@click.option("--remove-alerter", is_flag=True, help="Take the alerter out.")
def update(name: str, **options: Any) -> None:
    """Change the components of stack NAME."""
    changes: dict[str, str | None] = {}
    for ctype, long, _ in _TYPES:
        value = options[ctype]
        removed = ctype in _OPTIONAL and options[f"remove_{ctype}"]
        if value is not None and removed:
            raise click.UsageError(f"{long} and --remove-{long[2:]} contradict each other")
        if value is not None:
            changes[ctype] = value
        elif removed:
            changes[ctype] = None
    if not changes:
        raise click.UsageError("nothing to change: give a component (e.g. -o NAME) or a --remove-... flag")
    _client().update_stack(name, changes)
    click.echo(f"Updated stack {name!r}.")


@stack.command()
@click.argument("source")
@click.argument("target")
def copy(source: str, target: str) -> None:
    """Register stack TARGET with the same components as SOURCE."""
    _client().copy_stack(source, target)
    click.echo(f"Copied stack {source!r} to {target!r}.")


@stack.command()
@click.argument("name")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
def delete(name: str, yes: bool) -> None:
    """Delete stack NAME (its components stay registered)."""
    client = _client()
    client.get_stack(name)  # an unknown stack fails before the question
    if name == client.active_stack_name:
        client.delete_stack(name)  # refuses the active stack, with the fix in its message
    if not yes:
        click.confirm(f"Delete stack {name!r}?", abort=True)
    client.delete_stack(name)
    click.echo(f"Deleted stack {name!r}.")
