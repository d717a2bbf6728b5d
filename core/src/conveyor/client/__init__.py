"""Reading back what conveyor recorded, and managing stacks from Python."""

from conveyor._repository import close_stores
from conveyor.client._client import (
    ArtifactView,
    Client,
    Garbage,
    ModelVersionView,
    ModelView,
    PipelineRunView,
    PipelineView,
    StepRunView,
    format_time,
    load_artifact,
    save_artifact,
)

__all__ = [
    "ArtifactView",
    "Client",
    "Garbage",
    "ModelVersionView",
    "ModelView",
    "PipelineRunView",
    "PipelineView",
    "StepRunView",
    "close_stores",
    "format_time",
    "load_artifact",
    "save_artifact",
]
