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


def fake_distribution(folder: Path, name: str, entry_points: dict[str, dict[str, str]],
                      modules: dict[str, str] | None = None) -> Path:
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
