"""Helpers shared by core's tests."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any


def write_module(folder: Path, name: str, source: str) -> Path:
    """Write a module of user code and make sure a fresh import sees it."""
    path = folder / f"{name}.py"
    path.write_text(source)
    sys.modules.pop(name, None)
    # Bytecode is checked by whole-second mtime and size: an edit of the same
    # length within a second would otherwise run the old code.
    Path(importlib.util.cache_from_source(str(path))).unlink(missing_ok=True)
    return path


def fake_distribution(
    folder: Path, name: str, entry_points: dict[str, dict[str, str]], modules: dict[str, str] | None = None
) -> Path:
    """An installed-looking distribution (dist-info with entry points) in ``folder``.

    Put ``folder`` on ``sys.path`` and ``importlib.metadata`` finds it.
    """
    info = folder / f"{name}-0.1.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    lines = []
    for group, eps in entry_points.items():
        lines.append(f"[{group}]")
        lines += [f"{k} = {v}" for k, v in eps.items()]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    for mod, source in (modules or {}).items():
        (folder / f"{mod}.py").write_text(source)
    return info


# The CLI through click's test runner, as the CLI tests drive it.


def invoke(*args: str, input: str | None = None) -> Any:
    """Run ``conveyor ARGS`` in this process."""
    from click.testing import CliRunner

    from conveyor.cli._main import cli

    return CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)


def ok(*args: str) -> str:
    """Run a command that must succeed; return its stdout."""
    result = invoke(*args)
    assert result.exit_code == 0, f"{args}: {result.stderr or result.output}"
    return result.stdout


def as_json(*args: str) -> Any:
    """Run a command with --json and parse its output."""
    return json.loads(ok(*args, "--json"))


def fails(*args: str, code: int = 1) -> str:
    """Run a command that must fail; return its one-line error."""
    result = invoke(*args)
    assert result.exit_code == code, f"{args}: exit {result.exit_code}: {result.output}"
    assert "Traceback" not in result.output
    # A run's progress lines ("conveyor | ...") may come before its error.
    lines = [line for line in result.stderr.strip().splitlines() if not line.startswith("conveyor | ")]
    assert len(lines) == 1, lines
    assert lines[0].startswith("conveyor: error: "), lines[0]
    return lines[0]


def init_repository(folder: Path) -> None:
    """Make ``folder`` a repository (what ``conveyor init`` makes, without opening its store)."""
    from conveyor._repository import Repository

    Repository.init(folder)
