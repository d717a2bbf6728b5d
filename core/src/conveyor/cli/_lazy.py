"""A click group whose subcommands are imported only when they are used."""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

import click


class LazyGroup(click.Group):
    """A group that maps command names to ``"module:attr"`` strings.

    ``--help`` lists the commands with the short help given here, so it
    imports none of their modules; a command's module is imported when the
    command runs.

    Args:
        lazy_commands: ``{name: "module:attr"}``.
        lazy_help: ``{name: short help}`` shown by ``--help``.
        optional: names listed only when their module is installed.
    """

    def __init__(
        self,
        *args: Any,
        lazy_commands: dict[str, str] | None = None,
        lazy_help: dict[str, str] | None = None,
        optional: frozenset[str] = frozenset(),
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.lazy_commands = dict(lazy_commands or {})
        self.lazy_help = dict(lazy_help or {})
        self.optional = optional

    def _available(self, name: str) -> bool:
        if name not in self.optional:
            return True
        module = self.lazy_commands[name].partition(":")[0]
        try:
            return importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            return False

    def list_commands(self, ctx: click.Context) -> list[str]:
        lazy = [n for n in self.lazy_commands if self._available(n)]
        return sorted({*super().list_commands(ctx), *lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is not None or cmd_name not in self.lazy_commands or not self._available(cmd_name):
            return command
        module_name, _, attr = self.lazy_commands[cmd_name].partition(":")
        try:
            command = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            # An optional command whose module is broken must not take the others down.
            raise click.ClickException(f"the {cmd_name!r} command failed to load: {exc}") from None
        self.add_command(command, cmd_name)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            if name in self.commands:
                cmd = self.commands[name]
                if cmd.hidden:
                    continue
                text = cmd.get_short_help_str(formatter.width - 6 - len(name))
            else:
                text = self.lazy_help.get(name, "")
            rows.append((name, text))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)
