"""``conveyor secret ...``: create, inspect, change and delete encrypted secrets; rotate their key.

Values are given as ``--KEY=VALUE``, ``--KEY VALUE`` or ``KEY=VALUE``;
``@path`` reads a value from a file (``@-`` from stdin, ``@@x`` is the
literal ``@x``), and a bare ``--KEY`` asks for the value without echoing it.
Prefer files or the prompt: values typed on the command line stay in the
shell's history. Nothing here prints a value unless ``get --reveal`` asks.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from conveyor.cli._output import emit_json, fields, heading, json_option, table, when
from conveyor.exceptions import ConveyorError, SecretError
from conveyor.secrets._schemas import SCHEMAS

if TYPE_CHECKING:
    from conveyor.client import Client
    from conveyor.secrets import SecretInfo

_SCHEMA_HELP = "; ".join(f"{s.name}: {', '.join(s.keys) or 'any keys'}" for s in SCHEMAS.values())
_VALUES = {"ignore_unknown_options": True, "allow_extra_args": False}


class _Failed(click.ClickException):
    """A conveyor error as one line on stderr (also when this group runs on its own)."""

    def show(self, file: Any = None) -> None:
        click.echo(f"conveyor: error: {self.format_message()}", file=file or sys.stderr)


class _SecretGroup(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConveyorError as exc:
            raise _Failed(str(exc)) from None


def _client() -> Client:
    from conveyor.client import Client

    return Client()


def _read_value(key: str, raw: str | None) -> str:
    if raw is None:
        return click.prompt(f"{key}", hide_input=True, err=True)
    if raw.startswith("@@"):
        return raw[1:]
    if not raw.startswith("@"):
        return raw
    if raw == "@-":
        text = sys.stdin.read()
    else:
        path = Path(raw[1:]).expanduser()
        try:
            text = path.read_text("utf-8")
        except FileNotFoundError:
            raise SecretError(f"--{key}: no file {path}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise SecretError(f"--{key}: cannot read {path}: {type(exc).__name__}") from None
    # A file written by an editor or `echo` ends with a newline that is not part of the value.
    return text[:-2] if text.endswith("\r\n") else text[:-1] if text.endswith("\n") else text


def parse_secret_values(words: Sequence[str], schema: str | None = None) -> dict[str, str]:
    """``--KEY=VALUE``, ``--KEY VALUE``, ``KEY=VALUE`` and bare ``--KEY`` words as ``{key: value}``.

    For typed schemas ``--aws-access-key-id`` also names ``aws_access_key_id``.

    Raises:
        SecretError: a word is not a value (never echoed: it may be one), or a key is given twice.
    """
    known: tuple[str, ...] = ()
    if schema is not None:
        from conveyor.secrets import get_schema

        known = get_schema(schema).keys
    values: dict[str, str] = {}
    i = 0
    while i < len(words):
        word = words[i]
        raw: str | None
        if word.startswith("--") and len(word) > 2:
            key, eq, raw = word[2:].partition("=")
            if not eq:
                if i + 1 < len(words) and not words[i + 1].startswith("--"):
                    raw = words[i + 1]
                    i += 1
                else:
                    raw = None
        elif "=" in word and not word.startswith("-"):
            key, _, raw = word.partition("=")
        else:
            raise SecretError(f"argument {i + 1} after the secret's name is not --KEY=VALUE or KEY=VALUE")
        i += 1
        if key not in known and key.replace("-", "_") in known:
            key = key.replace("-", "_")
        if key in values:
            raise SecretError(f"key {key!r} is given twice")
        values[key] = _read_value(key, raw)
    return values


def _scope(info: SecretInfo) -> str:
    return "shared" if info.shared else "private"


def _owner(info: SecretInfo) -> str:
    return f"{info.owner} (you)" if info.mine else info.owner


@click.group(cls=_SecretGroup)
def secret() -> None:
    """Manage secrets: values encrypted in the metadata store, referred to as {{name.key}}.

    Component options and step environments hold references such as
    '{{aws_creds.aws_secret_access_key}}'; steps that declare
    @step(secrets=["aws_creds"]) read them with get_step_context().get_secret(...).
    """


@secret.command(context_settings=_VALUES)
@click.argument("name")
@click.option("--schema", "schema", default="plain", show_default=True, metavar="SCHEMA", help=_SCHEMA_HELP)
@click.option("--share", is_flag=True, help="Let other owners of this metadata store see and use it.")
@click.argument("values", nargs=-1, type=click.UNPROCESSED)
def create(name: str, schema: str, share: bool, values: tuple[str, ...]) -> None:
    """Create secret NAME from --KEY=VALUE pairs (@path reads a file; a bare --KEY prompts)."""
    parsed = parse_secret_values(values, schema)
    info = _client().create_secret(name, parsed, schema=schema, shared=share)
    click.echo(f"Created {_scope(info)} secret {name!r} ({info.schema}: {', '.join(info.keys)}).")


@secret.command("list")
@json_option
def list_secrets(as_json: bool) -> None:
    """List your secrets and the shared ones (never their values)."""
    infos = _client().list_secrets()
    if as_json:
        emit_json([i.to_dict() for i in infos])
        return
    table(
        ("NAME", "SCHEMA", "KEYS", "SCOPE", "OWNER", "UPDATED"),
        [(i.name, i.schema, ", ".join(i.keys), _scope(i), _owner(i), when(i.updated)) for i in infos],
        empty="No secrets. Create one: conveyor secret create NAME --KEY=VALUE",
    )


@secret.command()
@click.argument("name")
@click.option("--reveal", is_flag=True, help="Show the values (otherwise they print as ***).")
@json_option
def get(name: str, reveal: bool, as_json: bool) -> None:
    """Show secret NAME: its schema, scope and keys; values only with --reveal."""
    client = _client()
    if reveal:
        full = client.get_secret(name)
        info: SecretInfo = full
        values = dict(full.values)
    else:
        info = client.store.secret_store(folder=client.repository.dir).info(name)
        values = dict.fromkeys(info.keys, "***")
    if as_json:
        data = info.to_dict()
        if reveal:
            data["values"] = values
        emit_json(data)
        return
    fields(
        [
            ("name", info.name),
            ("schema", info.schema),
            ("scope", _scope(info)),
            ("owner", _owner(info)),
            ("key id", info.key_id),
            ("created", when(info.created)),
            ("updated", when(info.updated)),
        ]
    )
    heading("Keys")
    width = max((len(k) for k in values), default=0) + 2
    for key in info.keys:
        click.echo(f"  {key + ':':<{width}}{values[key]}")


@secret.command(context_settings=_VALUES)
@click.argument("name")
@click.option("--remove-key", "remove_keys", multiple=True, metavar="KEY", help="Remove a key (repeatable).")
@click.option("--replace", is_flag=True, help="The given keys become all of the secret's keys.")
@click.option("--share/--unshare", "shared", default=None, help="Share with other owners, or make private again.")
@click.argument("values", nargs=-1, type=click.UNPROCESSED)
def update(
    name: str, remove_keys: tuple[str, ...], replace: bool, shared: bool | None, values: tuple[str, ...]
) -> None:
    """Change secret NAME: set keys with --KEY=VALUE, remove them, share or unshare it."""
    client = _client()
    schema = client.store.secret_store(folder=client.repository.dir).info(name).schema
    parsed = parse_secret_values(values, schema)
    if not parsed and not remove_keys and shared is None:
        raise click.UsageError("nothing to change: give --KEY=VALUE, --remove-key KEY, --share or --unshare")
    info = client.update_secret(name, parsed, remove_keys=remove_keys, replace=replace, shared=shared)
    click.echo(f"Updated {_scope(info)} secret {name!r} ({info.schema}: {', '.join(info.keys)}).")


@secret.command()
@click.argument("name")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
def delete(name: str, yes: bool) -> None:
    """Delete secret NAME (components and steps that refer to it will fail until it exists again)."""
    client = _client()
    info = client.store.secret_store(folder=client.repository.dir).info(name)  # unknown names fail before the question
    if not info.mine:
        client.delete_secret(name)  # refuses, with the reason in its message
    if not yes:
        click.confirm(f"Delete secret {name!r}?", abort=True)
    client.delete_secret(name)
    click.echo(f"Deleted secret {name!r}.")


@secret.command("rotate-key")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
def rotate_key(yes: bool) -> None:
    """Re-encrypt every secret with a new key, in one transaction; the old key stops working.

    With a key file (.conveyor/secrets.key or CONVEYOR_SECRETS_KEY_FILE) a new
    key is made and replaces it. With CONVEYOR_SECRETS_KEY, first set it to
    NEW,OLD (conveyor secret generate-key makes a key), rotate, then drop OLD.
    """
    client = _client()
    if not yes:
        click.confirm(
            "Re-encrypt every secret with a new key? Backups of the database made before will need the old key",
            abort=True,
        )
    result = client.store.secret_store(folder=client.repository.dir).rotate_key()
    click.echo(f"Re-encrypted {result.rotated} secret(s) with key {result.new_key_id} ({result.source}).")
    if result.skipped:
        click.echo(f"Left {result.skipped} secret(s) of other owners encrypted with keys this process does not hold.")
    if result.old_key_ids and result.source.startswith("$"):
        click.echo(f"Now remove the old key(s) from {result.source[1:]}: only the first one is needed.")


@secret.command("generate-key")
def generate_key() -> None:
    """Print a new random secrets key (for CONVEYOR_SECRETS_KEY)."""
    from conveyor.secrets import generate_key as make_key

    click.echo(make_key())
