"""Helpers of conveyor-mlflow's tests: user code in the repository, the CLI."""

from __future__ import annotations

import textwrap
from pathlib import Path

from click.testing import CliRunner


def write_module(folder: Path, name: str, source: str) -> Path:
    """Write user code ``name.py`` into ``folder``."""
    path = folder / f"{name}.py"
    path.write_text(textwrap.dedent(source))
    return path


def cli(*args: str) -> str:
    """Run ``conveyor ARGS``; fail the test with its output unless it exits 0."""
    from conveyor.cli import cli as root

    result = CliRunner().invoke(root, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return str(result.output)


def cli_fails(*args: str) -> str:
    """Run ``conveyor ARGS`` that must fail; its output."""
    from conveyor.cli import cli as root

    result = CliRunner().invoke(root, list(args), catch_exceptions=False)
    assert result.exit_code != 0, result.output
    return str(result.output)
