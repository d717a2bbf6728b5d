"""The pipeline IR: plain, frozen, JSON round-trip stable data.

Adapters compile a :class:`Deployment`; the step entrypoint runs one step of
it. Nothing here imports an engine or the rest of conveyor. The naming rule
(:func:`name_problem`) imports nothing at all; the models load pydantic on
first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from conveyor.ir._names import (
    MAX_NAME_BYTES,
    NAME_RULE,
    RESERVED_OUTPUT_NAMES,
    RUN_NAME_FIELDS,
    check_name,
    fill_run_name,
    name_problem,
    output_name_problem,
    run_name_template_problem,
    shown,
)
from conveyor.ir._resources import MEMORY_UNITS, cpu_quantity, memory_quantity, parse_memory

_MODELS = (
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
)

__all__ = [
    "IR_VERSION",
    "MAX_NAME_BYTES",
    "MEMORY_UNITS",
    "NAME_RULE",
    "RESERVED_OUTPUT_NAMES",
    "RUN_NAME_FIELDS",
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
    "check_name",
    "cpu_quantity",
    "fill_run_name",
    "load_deployment",
    "memory_quantity",
    "name_problem",
    "output_name_problem",
    "parse_memory",
    "run_name_template_problem",
    "shown",
]

if TYPE_CHECKING:
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


def __getattr__(name: str) -> Any:
    if name not in _MODELS:
        raise AttributeError(f"module 'conveyor.ir' has no attribute {name!r}")
    from conveyor.ir import _models

    value = getattr(_models, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
