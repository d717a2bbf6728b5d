"""Helpers of conveyor-data's tests (a module name unique across the repository's test suites)."""

from __future__ import annotations

import sys
from pathlib import Path

from conveyor.stores import ArtifactStore


def write_module(folder: Path, name: str, source: str) -> None:
    """Write a module of user code and make sure a fresh import sees it."""
    path = folder / f"{name}.py"
    path.write_text(source)
    sys.modules.pop(name, None)


class Folders:
    """Fresh artifact folders in one store (a local folder, or fsspec's in-memory filesystem)."""

    def __init__(self, store: ArtifactStore) -> None:
        self.store = store
        self._n = 0

    def new(self) -> str:
        self._n += 1
        uri = self.store.join(f"artifact-{self._n}")
        self.store.makedirs(uri)
        return uri

    def roundtrip(self, materializer: type, value: object, data_type: type | None = None) -> object:
        """Save ``value`` into a fresh folder and load it back with a new materializer."""
        uri = self.new()
        materializer(uri, self.store).save(value)
        return materializer(uri, self.store).load(data_type or type(value))
