"""Where conveyor keeps things: artifact bytes (fsspec) and metadata (SQLAlchemy)."""

from conveyor.stores._artifact_store import ArtifactStore, LocalArtifactStore
from conveyor.stores._records import (
    ArtifactRecord,
    ComponentRecord,
    PipelineRecord,
    RunRecord,
    RunStatus,
    StackRecord,
    StepRunRecord,
)

__all__ = [
    "ArtifactRecord",
    "ArtifactStore",
    "ComponentRecord",
    "LocalArtifactStore",
    "MetadataStore",
    "PipelineRecord",
    "RunRecord",
    "RunStatus",
    "StackRecord",
    "StepRunRecord",
]


def __getattr__(name: str) -> object:
    # SQLAlchemy is imported only by code that opens the metadata store.
    if name == "MetadataStore":
        from conveyor.stores._metadata import MetadataStore

        return MetadataStore
    raise AttributeError(name)
