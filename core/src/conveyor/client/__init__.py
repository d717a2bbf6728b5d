"""Reading back what conveyor recorded, and managing stacks from Python."""

from conveyor.client._client import ArtifactView, Client, PipelineRunView, PipelineView, StepRunView, format_time

__all__ = ["ArtifactView", "Client", "PipelineRunView", "PipelineView", "StepRunView", "format_time"]
