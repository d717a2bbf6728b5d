"""Shared fixtures of conveyor-data's tests: artifact folders, hypothesis settings (``repo`` comes from conveyor_testing)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from data_test_support import Folders
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
