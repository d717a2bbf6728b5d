"""Shared fixtures of conveyor-data's tests: a repository per test, artifact folders, hypothesis settings."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from conveyor.stores import ArtifactStore, LocalArtifactStore

# Examples write files; no deadline (the first example imports the libraries), no
# example database left in the working folder. HYPOTHESIS_PROFILE=thorough tries 1000 examples a test.
settings.register_profile(
    "conveyor-data",
    deadline=None,
    database=None,
    max_examples=60,
    # The store fixtures are reused across examples on purpose: each example takes a fresh folder.
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
)
settings.register_profile("thorough", parent=settings.get_profile("conveyor-data"), max_examples=1000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "conveyor-data"))


def _forget_stores() -> None:
    from conveyor import _repository

    for store in _repository._stores.values():
        store.close()
    _repository._stores.clear()


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh conveyor repository in a temporary folder, which is also the working folder and on sys.path."""
    monkeypatch.setenv("CONVEYOR_REPOSITORY", str(tmp_path))
    (tmp_path / ".conveyor").mkdir()
    for name in ("CONVEYOR_STORE_URL", "CONVEYOR_STACK"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    _forget_stores()
    yield tmp_path
    _forget_stores()


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


@pytest.fixture
def local(tmp_path_factory: pytest.TempPathFactory) -> Folders:
    """Artifact folders in a local store (files are memory-mapped on load)."""
    return Folders(LocalArtifactStore(str(tmp_path_factory.mktemp("store"))))


@pytest.fixture
def remote(request: pytest.FixtureRequest) -> Iterator[Folders]:
    """Artifact folders in fsspec's in-memory filesystem: a store that is not a local folder."""
    import fsspec

    root = f"memory://conveyor-data-tests/{request.node.name}"
    store = ArtifactStore(root)
    yield Folders(store)
    fs = fsspec.filesystem("memory")
    if fs.exists(root):
        fs.rm(root, recursive=True)
