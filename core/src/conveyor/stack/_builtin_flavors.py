"""The artifact store flavors that ship with conveyor: ``local`` and ``fsspec``."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from conveyor.stack._flavor import ComponentType, Flavor
from conveyor.stores import ArtifactStore, LocalArtifactStore


class LocalArtifactStoreConfig(BaseModel):
    """Config of the ``local`` artifact store."""

    model_config = ConfigDict(extra="forbid")

    path: str
    """The folder artifacts are written to."""


class LocalArtifactStoreFlavor(Flavor):
    """Artifacts in a folder on this machine."""

    type = ComponentType.ARTIFACT_STORE
    name = "local"
    description = "a folder on this machine"

    @property
    def config_class(self) -> type[BaseModel]:
        return LocalArtifactStoreConfig

    def create(self, name: str, config: Any) -> ArtifactStore:
        return LocalArtifactStore(config.path)


class FsspecArtifactStoreConfig(BaseModel):
    """Config of the ``fsspec`` artifact store."""

    model_config = ConfigDict(extra="forbid")

    path: str
    """A URL fsspec understands (``memory://x``, ``s3://bucket/prefix``, ``gcs://...``)."""
    storage_options: dict[str, Any] = {}
    """Keyword arguments of the fsspec filesystem (may hold ``{{secret.key}}`` references)."""


class FsspecArtifactStoreFlavor(Flavor):
    """Artifacts at any URL that fsspec can open."""

    type = ComponentType.ARTIFACT_STORE
    name = "fsspec"
    description = "any fsspec URL (install the filesystem's package, e.g. s3fs)"

    @property
    def config_class(self) -> type[BaseModel]:
        return FsspecArtifactStoreConfig

    def create(self, name: str, config: Any) -> ArtifactStore:
        return ArtifactStore(config.path, config.storage_options)
