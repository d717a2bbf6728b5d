"""The ``conveyor`` command line."""

from conveyor.cli._main import main

__all__ = ["main"]
