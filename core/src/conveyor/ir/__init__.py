"""The pipeline IR: plain, frozen, JSON round-trip stable data.

Adapters compile a :class:`Deployment`; the step entrypoint runs one step of
it. Nothing here imports an engine or the rest of conveyor. The naming rule
(:func:`name_problem`) imports nothing at all; the models load pydantic on
first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from conveyor.ir._names import (
    LATEST,
    MAX_NAME_BYTES,
    MAX_SOURCE_LENGTH,
    NAME_RULE,
    RESERVED_OUTPUT_NAMES,
    RUN_NAME_FIELDS,
    artifact_name_ok,
    check_name,
    fill_run_name,
    hook_source_problem,
    name_problem,
    normalize_version,
    output_name_problem,
    parse_model_reference,
    run_name_template_problem,
    shown,
    version_name_problem,
    version_reference_problem,
)
from conveyor.ir._resources import MEMORY_UNITS, cpu_quantity, memory_quantity, parse_memory

_MODELS = (
    "IR_VERSION",
    "ArtifactInput",
    "ComponentIR",
    "Deployment",
    "ModelIR",
    "ModelInput",
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
)

__all__ = [
    "IR_VERSION",
    "LATEST",
    "MAX_NAME_BYTES",
    "MAX_SOURCE_LENGTH",
    "MEMORY_UNITS",
    "NAME_RULE",
    "RESERVED_OUTPUT_NAMES",
    "RUN_NAME_FIELDS",
    "ArtifactInput",
    "ComponentIR",
    "Deployment",
    "ModelIR",
    "ModelInput",
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
    "artifact_name_ok",
    "canonical_json",
    "check_name",
    "cpu_quantity",
    "fill_run_name",
    "hook_source_problem",
    "load_deployment",
    "memory_quantity",
    "name_problem",
    "normalize_version",
    "output_name_problem",
    "parse_memory",
    "parse_model_reference",
    "run_name_template_problem",
    "shown",
    "version_name_problem",
    "version_reference_problem",
]

if TYPE_CHECKING:
    from conveyor.ir._models import (
        IR_VERSION,
        ArtifactInput,
        ComponentIR,
        Deployment,
        ModelInput,
        ModelIR,
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


def __getattr__(name: str) -> Any:
    if name not in _MODELS:
        raise AttributeError(f"module 'conveyor.ir' has no attribute {name!r}")
    from conveyor.ir import _models

    value = getattr(_models, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
