"""The pipeline IR: plain, frozen, JSON round-trip stable data.

Adapters compile a :class:`Deployment`; the step entrypoint runs one step of
it. Nothing here imports an engine or the rest of conveyor.
"""

from conveyor.ir._models import (
    IR_VERSION,
    ArtifactInput,
    ComponentIR,
    Deployment,
    OutputSpec,
    ParameterInput,
    PipelineIR,
    PipelineSettings,
    ResourceSettings,
    Schedule,
    StackIR,
    StepInput,
    StepIR,
    StepSettings,
    canonical_json,
    load_deployment,
)

__all__ = [
    "IR_VERSION",
    "ArtifactInput",
    "ComponentIR",
    "Deployment",
    "OutputSpec",
    "ParameterInput",
    "PipelineIR",
    "PipelineSettings",
    "ResourceSettings",
    "Schedule",
    "StackIR",
    "StepIR",
    "StepInput",
    "StepSettings",
    "canonical_json",
    "load_deployment",
]
