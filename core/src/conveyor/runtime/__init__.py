"""The step entrypoint, ``python -m conveyor.runtime run-step ...``, the same on every engine.

Orchestrators render :func:`step_command` and :func:`finish_command` into
their engine's tasks, create or join runs with :func:`start_run`, and settle
runs their engine ended with :func:`settle_after_engine`.
"""

from conveyor.runtime._context import MAX_METADATA_BYTES, StepContext, get_step_context, log_metadata
from conveyor.runtime._executor import (
    RunEnvironment,
    add_run_link,
    artifact_name,
    cache_key,
    execute_step,
    finalize_run,
    set_secret_loader,
    write_artifact,
)
from conveyor.runtime._logs import mask_file_descriptors
from conveyor.runtime._main import finish_command, main, step_command
from conveyor.runtime._models import check_models, model_version_for, resolve_model_input
from conveyor.runtime._runs import (
    check_run_name_template,
    code_version,
    make_run_name,
    settle_after_engine,
    start_run,
)

__all__ = [
    "MAX_METADATA_BYTES",
    "RunEnvironment",
    "StepContext",
    "add_run_link",
    "artifact_name",
    "cache_key",
    "check_models",
    "check_run_name_template",
    "code_version",
    "execute_step",
    "finalize_run",
    "finish_command",
    "get_step_context",
    "log_metadata",
    "main",
    "make_run_name",
    "mask_file_descriptors",
    "model_version_for",
    "resolve_model_input",
    "set_secret_loader",
    "settle_after_engine",
    "start_run",
    "step_command",
    "write_artifact",
]
