"""Writing pipelines: ``@step`` and ``@pipeline``, traced into the IR."""

from conveyor.dsl._pipeline import ENTRYPOINT_ENV, Pipeline, pipeline, write_run_configuration_template
from conveyor.dsl._step import Step, step
from conveyor.dsl._tracing import StepOutput, StepOutputs
from conveyor.dsl._types import (
    SINGLE_OUTPUT,
    ArtifactConfig,
    is_compatible,
    parameter_adapter,
    parameter_problem,
    parse_outputs,
    runtime_type,
    type_name,
    value_matches,
)

__all__ = [
    "ENTRYPOINT_ENV",
    "SINGLE_OUTPUT",
    "ArtifactConfig",
    "Pipeline",
    "Step",
    "StepOutput",
    "StepOutputs",
    "is_compatible",
    "parameter_adapter",
    "parameter_problem",
    "parse_outputs",
    "pipeline",
    "runtime_type",
    "step",
    "type_name",
    "value_matches",
    "write_run_configuration_template",
]
