"""The ``conveyor`` command line."""

from conveyor.cli._main import cli, main

__all__ = ["cli", "main"]
