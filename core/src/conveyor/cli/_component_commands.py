"""``conveyor <component type> ...``: one command group per stack component type.

Options a command does not know (``--path /data``, ``--max-workers=4``,
``--verbose``) are the component's config; the flavor's config model checks
them, so a wrong option is a one-line error that names the valid ones.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from conveyor.cli._output import Col, compact, emit_json, fields, iso, json_option, table, when

if TYPE_CHECKING:
    from conveyor.client import Client
    from conveyor.stack import Flavor
    from conveyor.stores import ComponentRecord

_FREE_OPTIONS = {"ignore_unknown_options": True, "allow_extra_args": True}

_GROUP_HELP = {
    "orchestrator": "decides where and when the steps of a pipeline run",
    "artifact_store": "keeps the bytes of every artifact",
    "container_registry": "stores the images that steps run in",
    "image_builder": "builds the images that steps run in",
    "step_operator": "runs single steps somewhere else (a container, a remote machine)",
    "experiment_tracker": "records the parameters, metrics and models of the steps that name it",
    "data_validator": "checks data against a schema in the steps that name it",
    "model_deployer": "serves models as long-lived services (see `conveyor service`)",
    "alerter": "tells people what happened (hooks, a step's messages) and asks them questions",
}


def _client() -> Client:
    from conveyor.client import Client

    return Client()


def component_json(record: ComponentRecord, stacks: list[str]) -> dict[str, Any]:
    """A component as plain data."""
    return {
        "id": record.id,
        "type": record.type,
        "name": record.name,
        "flavor": record.flavor,
        "config": record.config,
        "stacks": stacks,
        "created": iso(record.created),
        "updated": iso(record.updated),
    }


def _users(client: Client, component_type: str) -> dict[str, list[str]]:
    """``{component id: [stack names]}`` for one component type."""
    users: dict[str, list[str]] = {}
    for record in client.list_stacks():
        comp = record.components.get(component_type)
        if comp is not None:
            users.setdefault(comp.id, []).append(record.name)
    return users


def flavor_json(flavor: Flavor) -> dict[str, Any]:
    """A flavor as plain data: description, capabilities, config options (names, and each with type and default)."""
    try:
        details = flavor.options()
    except Exception:  # a plugin's broken config model is shown, not fatal
        details = []
    return {
        "name": flavor.name,
        "type": flavor.type,
        "description": flavor.description,
        "capabilities": sorted(flavor.capabilities),
        "requires": list(flavor.requires),
        "settings": list(flavor.settings_namespaces),
        "install": flavor.install,
        "options": sorted(o["name"] for o in details),
        "option_details": details,
        "source": f"{type(flavor).__module__}:{type(flavor).__qualname__}",
    }


def _default_text(option: dict[str, Any], limit: int = 28) -> str:
    if option["required"]:
        return "(required)"
    text = compact(option["default"]) if option["default"] is not None else "-"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _print_flavor(data: dict[str, Any], *, full: bool) -> None:
    """One flavor as a block of lines that fits 80 columns: what it is, then its options."""
    import textwrap

    click.echo(click.style(data["name"], bold=True) + (f": {data['description']}" if data["description"] else ""))
    if data["capabilities"]:
        click.echo(f"  capabilities: {', '.join(data['capabilities'])}")
    if full:
        if data["requires"]:
            click.echo(f"  needs in its stack: {', '.join(r.replace('_', '-') for r in data['requires'])}")
        if data["install"]:
            click.echo(f"  install: {data['install']}")
    options = data["option_details"]
    if not options:
        click.echo("  options: none")
        return
    name_w = max(len("OPTION"), *(len(o["name"]) for o in options)) + 2
    type_w = min(max(len("TYPE"), *(len(o["type"]) for o in options)), 24) + 2
    click.echo(f"  {'--OPTION':<{name_w + 2}}{'TYPE':<{type_w}}DEFAULT")
    for o in options:
        click.echo(f"  --{o['name'].replace('_', '-'):<{name_w}}{o['type']:<{type_w}}{_default_text(o)}")
        if full and o["description"]:
            for line in textwrap.wrap(o["description"], width=74):
                click.echo(f"      {line}")


def _name_first(name: str, kind: str, command: str) -> None:
    if name.startswith("-"):
        raise click.UsageError(f"give the {kind} NAME first: conveyor {kind} {command} NAME [--option value ...]")


def component_group(component_type: str) -> click.Group:
    """The command group of one component type (``orchestrator``, ``artifact-store``, ...)."""
    kind = component_type.replace("_", "-")

    @click.group(name=kind, help=f"Manage {kind}s: the {kind} {_GROUP_HELP[component_type]}.")
    def group() -> None:
        pass

    @group.command(context_settings=_FREE_OPTIONS)
    @click.argument("name")
    @click.option("--flavor", "-f", required=True, help=f"The {kind} flavor (see `conveyor {kind} flavor list`).")
    @click.pass_context
    def register(ctx: click.Context, name: str, flavor: str) -> None:
        from conveyor.cli._parsing import parse_component_options

        _name_first(name, kind, "register")
        config = parse_component_options(ctx.args)
        record = _client().register_component(component_type, name, flavor, config)
        click.echo(f"Registered {kind} {record.name!r} (flavor {record.flavor}).")

    register.help = (
        f"Register {kind} NAME of a flavor; other --options are its config.\n\n"
        "Values are JSON when they parse as JSON (numbers, true/false, lists, objects), else text; "
        "a bare --flag is true.\n\n"
        f"\b\nExample:\n  conveyor {kind} register NAME --flavor FLAVOR --some-option value"
    )

    @group.command(name="list")
    @json_option
    def list_components(as_json: bool) -> None:
        client = _client()
        records = client.store.list_components(component_type)
        users = _users(client, component_type)
        if as_json:
            emit_json([component_json(r, users.get(r.id, [])) for r in records])
            return
        rows = [[r.name, r.flavor, r.config, ", ".join(users.get(r.id, []))] for r in records]
        table(
            [Col("NAME", fold=True), "FLAVOR", Col("CONFIG", fold=True), Col("STACKS", fold=True)],
            rows,
            empty=f"No {kind}s.",
        )

    list_components.help = f"List registered {kind}s."

    @group.command()
    @click.argument("name")
    @json_option
    def describe(name: str, as_json: bool) -> None:
        client = _client()
        record = client.store.get_component(component_type, name)
        stacks = _users(client, component_type).get(record.id, [])
        if as_json:
            emit_json(component_json(record, stacks))
            return
        fields(
            [
                (kind.capitalize(), record.name),
                ("Flavor", record.flavor),
                ("ID", record.id),
                ("Stacks", ", ".join(stacks) or "-"),
                ("Created", when(record.created)),
                ("Updated", when(record.updated)),
            ]
        )
        click.echo("Config:" + ("" if record.config else " {}"))
        for key, value in sorted(record.config.items()):
            click.echo(f"  {key}: {compact(value)}")

    describe.help = f"Show {kind} NAME: flavor, config and the stacks that use it."

    @group.command(context_settings=_FREE_OPTIONS)
    @click.argument("name")
    @click.pass_context
    def update(ctx: click.Context, name: str) -> None:
        from conveyor.cli._parsing import parse_component_options

        _name_first(name, kind, "update")
        config = parse_component_options(ctx.args)
        if not config:
            raise click.UsageError(f"nothing to change: give options, e.g. conveyor {kind} update {name} --key value")
        _client().update_component(component_type, name, config)
        click.echo(f"Updated {kind} {name!r}.")

    update.help = f"Change options of {kind} NAME (given as --key value, merged over the old ones)."

    @group.command()
    @click.argument("name")
    @click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
    def delete(name: str, yes: bool) -> None:
        from conveyor.exceptions import StoreError

        client = _client()
        record = client.store.get_component(component_type, name)  # an unknown name fails before the question
        stacks = _users(client, component_type).get(record.id, [])
        if stacks:  # refused before the question too, naming who uses it
            client.store.delete_component(component_type, name)
            raise StoreError(f"{kind} {name!r} is used by stack {', '.join(stacks)}")
        if not yes:
            click.confirm(f"Delete {kind} {name!r}?", abort=True)
        client.store.delete_component(component_type, name)
        click.echo(f"Deleted {kind} {name!r}.")

    delete.help = f"Delete {kind} NAME (refused while a stack uses it); asks first unless -y."

    @group.group()
    def flavor() -> None:
        pass

    flavor.help = f"Installed {kind} flavors."

    @flavor.command(name="list")
    @json_option
    def list_flavors(as_json: bool) -> None:
        from conveyor.stack import flavors

        # Broken plugins are reported on stderr by the registry and left out.
        found = [flavor_json(f) for f in flavors.all(component_type)]
        if as_json:
            emit_json(found)
            return
        if not found:
            click.echo(f"No {kind} flavors installed.")
            return
        for i, data in enumerate(found):
            if i:
                click.echo()
            _print_flavor(data, full=False)
        click.echo(f"\nMore about one: conveyor {kind} flavor describe FLAVOR")

    list_flavors.help = f"List installed {kind} flavors with their capabilities and options (type and default)."

    @flavor.command(name="describe")
    @click.argument("flavor_name", metavar="FLAVOR")
    @json_option
    def describe_flavor(flavor_name: str, as_json: bool) -> None:
        from conveyor.stack import flavors

        data = flavor_json(flavors.get(component_type, flavor_name))
        if as_json:
            emit_json(data)
            return
        _print_flavor(data, full=True)

    describe_flavor.help = f"Show {kind} flavor FLAVOR: what it is, what it needs, each option with its meaning."

    return group


orchestrator = component_group("orchestrator")
artifact_store = component_group("artifact_store")
container_registry = component_group("container_registry")
image_builder = component_group("image_builder")
step_operator = component_group("step_operator")
experiment_tracker = component_group("experiment_tracker")
data_validator = component_group("data_validator")
model_deployer = component_group("model_deployer")
alerter = component_group("alerter")
