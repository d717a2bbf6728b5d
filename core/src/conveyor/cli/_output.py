"""Printing for the command line: JSON for machines, tables for people.

rich is imported only when a table is printed.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

json_option: Callable[[F], F] = click.option(
    "--json", "as_json", is_flag=True, help="Print machine-readable JSON on stdout."
)
"""The ``--json`` flag of list and describe commands."""


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (set, frozenset, tuple)):
        return sorted(value) if isinstance(value, (set, frozenset)) else list(value)
    return str(value)


def emit_json(data: Any) -> None:
    """Print ``data`` as indented JSON (datetimes as ISO 8601)."""
    click.echo(json.dumps(data, indent=2, sort_keys=True, default=_json_default))


def compact(value: Any) -> str:
    """A value on one line: strings as they are, anything else as JSON."""
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, default=_json_default)


def iso(value: datetime | None) -> str | None:
    """A timestamp as ISO 8601, or None."""
    return value.isoformat() if value is not None else None


def when(value: datetime | None) -> str:
    """A timestamp for people (UTC, to the second)."""
    return value.strftime("%Y-%m-%d %H:%M:%S") if value is not None else "-"


def when_short(value: datetime | None) -> str:
    """A timestamp for a table column (UTC, to the minute)."""
    return value.strftime("%Y-%m-%d %H:%M") if value is not None else "-"


SHORT_ID = 8
"""How much of an id tables show; any unique prefix of 4 or more characters names the record."""


def short_id(value: str | None) -> str:
    """The first characters of an id, as tables show it."""
    return value[:SHORT_ID] if value else "-"


@dataclass(frozen=True)
class Col:
    """A table column.

    Attributes:
        name: the heading.
        fold: long values wrap onto more lines (names); other columns stay on one line.
        optional: left out when every value is empty (``-``).
        right: aligned right (numbers, durations).
    """

    name: str
    fold: bool = False
    optional: bool = False
    right: bool = False


def seconds(started: datetime | None, ended: datetime | None) -> float | None:
    """Seconds between two timestamps, if both are known."""
    if started is None or ended is None:
        return None
    return round((ended - started).total_seconds(), 3)


def duration(value: float | None) -> str:
    """A duration for people."""
    if value is None:
        return "-"
    if value < 60:
        return f"{value:.2f}s"
    minutes, secs = divmod(int(value), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def _render(renderable: Any) -> None:
    from rich.console import Console

    tty = sys.stdout.isatty()
    # Piped output is not wrapped, so that it greps and copies whole.
    console = Console(
        width=None if tty else 100_000, force_terminal=tty, highlight=False, markup=False, emoji=False, soft_wrap=False
    )
    with console.capture() as captured:
        console.print(renderable)
    text = captured.get()
    if not tty:
        text = "\n".join(line.rstrip() for line in text.splitlines()) + "\n"
    click.echo(text, nl=False)


def table(columns: Sequence[str | Col], rows: Iterable[Sequence[Any]], *, empty: str | None = None) -> None:
    """Print rows as a table (``empty`` instead when there are none).

    On a terminal the table fits its width (80 columns included): columns
    that ``fold`` wrap, the others are cut with an ellipsis only when nothing
    else is left to give. Piped, rows stay whole on one line each.
    """
    rows = [[compact(c) for c in row] for row in rows]
    if not rows and empty is not None:
        click.echo(empty)
        return
    from rich import box
    from rich.table import Table
    from rich.text import Text

    specs = [c if isinstance(c, Col) else Col(c) for c in columns]
    keep = [i for i, c in enumerate(specs) if not c.optional or any(row[i] not in ("", "-") for row in rows)]
    grid = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, collapse_padding=True, header_style="bold")
    for i in keep:
        spec = specs[i]
        grid.add_column(
            spec.name,
            overflow="fold" if spec.fold else "ellipsis",
            no_wrap=not spec.fold,
            justify="right" if spec.right else "left",
        )
    for row in rows:
        grid.add_row(*(Text(row[i]) for i in keep))
    _render(grid)


def fields(pairs: Iterable[tuple[str, Any]]) -> None:
    """Print ``label: value`` lines, aligned."""
    pairs = list(pairs)
    width = max((len(label) for label, _ in pairs), default=0) + 2
    for label, value in pairs:
        click.echo(f"{label + ':':<{width}}{compact(value)}")


def heading(text: str) -> None:
    """A blank line and a section title."""
    click.echo()
    click.echo(click.style(text, bold=True))
