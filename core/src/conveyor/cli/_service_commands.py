"""``conveyor service ...``: the model services of the active stack's model deployer."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from conveyor.cli._output import emit_json, fields, json_option, table

if TYPE_CHECKING:
    from conveyor.stack import ModelDeployer


def _deployer(stack_name: str | None) -> ModelDeployer:
    from conveyor.client import Client
    from conveyor.stack import ComponentType, Stack

    client = Client()
    stack = Stack.from_record(client.get_stack(stack_name))
    deployer: ModelDeployer = stack.component(ComponentType.MODEL_DEPLOYER)
    return deployer


_stack_option = click.option(
    "--stack", "stack_name", metavar="STACK", help="The stack whose model deployer to ask (default: the active one)."
)


@click.group()
def service() -> None:
    """List, inspect, stop, start and delete model services.

    A service is a long-lived process that serves a model (deployed by a
    step through the stack's model deployer). A service whose process died
    shows as stopped; `start` brings it back with its recorded configuration.
    """


@service.command(name="list")
@_stack_option
@json_option
def list_services(stack_name: str | None, as_json: bool) -> None:
    """List services with their status and URL."""
    found = _deployer(stack_name).list_services()
    if as_json:
        emit_json([s.model_dump(mode="json") for s in found])
        return
    rows = [[s.id[:12], s.name, s.status, s.url, s.pid or "-", s.model_uri] for s in found]
    table(["ID", "NAME", "STATUS", "URL", "PID", "MODEL"], rows, empty="No services.")


@service.command()
@click.argument("ref", metavar="SERVICE")
@_stack_option
@json_option
def describe(ref: str, stack_name: str | None, as_json: bool) -> None:
    """Show SERVICE (an id, id prefix or name): status, process, port, log file, health endpoint."""
    info = _deployer(stack_name).get_service(ref)
    if as_json:
        emit_json(info.model_dump(mode="json"))
        return
    pairs: list[tuple[str, Any]] = [
        ("Service", info.name),
        ("ID", info.id),
        ("Flavor", info.flavor),
        ("Status", info.status),
        ("Model", info.model_uri),
        ("URL", info.url),
        ("Health", info.health_url),
        ("PID", info.pid or "-"),
        ("Port", info.port),
        ("Log file", info.log_file),
        ("Created", info.created),
    ]
    pairs.extend((key.capitalize(), value) for key, value in sorted(info.metadata.items()))
    fields(pairs)


@service.command()
@click.argument("ref", metavar="SERVICE")
@_stack_option
def stop(ref: str, stack_name: str | None) -> None:
    """Stop SERVICE's process (its record stays; `start` brings it back)."""
    info = _deployer(stack_name).stop_service(ref)
    click.echo(f"Stopped service {info.name!r} ({info.id[:12]}).")


@service.command()
@click.argument("ref", metavar="SERVICE")
@_stack_option
def start(ref: str, stack_name: str | None) -> None:
    """Start SERVICE again with its recorded configuration; wait until it is healthy."""
    info = _deployer(stack_name).start_service(ref)
    click.echo(f"Started service {info.name!r} ({info.id[:12]}) at {info.url}.")


@service.command()
@click.argument("ref", metavar="SERVICE")
@_stack_option
def delete(ref: str, stack_name: str | None) -> None:
    """Stop SERVICE and forget it (its log file is removed)."""
    deployer = _deployer(stack_name)
    info = deployer.get_service(ref)
    deployer.delete_service(info.id)
    click.echo(f"Deleted service {info.name!r} ({info.id[:12]}).")


@service.command()
@click.argument("ref", metavar="SERVICE")
@_stack_option
def logs(ref: str, stack_name: str | None) -> None:
    """Print what SERVICE's process wrote."""
    click.echo(_deployer(stack_name).service_logs(ref), nl=False)
