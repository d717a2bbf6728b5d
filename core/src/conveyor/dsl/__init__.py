"""Writing pipelines: ``@step`` and ``@pipeline``, traced into the IR."""

from conveyor.dsl._hooks import EVENTS, call_hook, check_hook, check_hook_sources, hook_sources, load_hook
from conveyor.dsl._model import Model, ModelArtifact, model_input, model_ir_of, takes_text
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
    "EVENTS",
    "SINGLE_OUTPUT",
    "ArtifactConfig",
    "Model",
    "ModelArtifact",
    "Pipeline",
    "Step",
    "StepOutput",
    "StepOutputs",
    "call_hook",
    "check_hook",
    "check_hook_sources",
    "hook_sources",
    "is_compatible",
    "load_hook",
    "model_input",
    "model_ir_of",
    "parameter_adapter",
    "parameter_problem",
    "parse_outputs",
    "pipeline",
    "runtime_type",
    "step",
    "takes_text",
    "type_name",
    "value_matches",
    "write_run_configuration_template",
]
