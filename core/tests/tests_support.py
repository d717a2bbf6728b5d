"""Helpers shared by core's tests."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def write_module(folder: Path, name: str, source: str) -> Path:
    """Write a module of user code and make sure a fresh import sees it."""
    path = folder / f"{name}.py"
    path.write_text(source)
    sys.modules.pop(name, None)
    os.utime(path)
    return path
