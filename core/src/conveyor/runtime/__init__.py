"""The step entrypoint, ``python -m conveyor.runtime run-step ...``, the same on every engine.

Orchestrators render :func:`step_command` and :func:`finish_command` into
their engine's tasks, create or join runs with :func:`start_run`, settle
runs with :func:`settle_run` (which runs the hooks then due) and runs their
engine ended with :func:`settle_after_engine`.
"""

from conveyor.runtime._context import MAX_METADATA_BYTES, StepContext, get_step_context, log_metadata
from conveyor.runtime._executor import (
    RunEnvironment,
    add_run_link,
    artifact_name,
    cache_key,
    execute_step,
    finalize_run,
    is_last_attempt,
    set_secret_loader,
    write_artifact,
)
from conveyor.runtime._hooks import (
    HookContext,
    run_due_hooks,
    run_hooks,
    run_launch_failure_hooks,
    run_pipeline_hooks,
    run_step_hooks,
    settle_run,
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
    "HookContext",
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
    "is_last_attempt",
    "log_metadata",
    "main",
    "make_run_name",
    "mask_file_descriptors",
    "model_version_for",
    "resolve_model_input",
    "run_due_hooks",
    "run_hooks",
    "run_launch_failure_hooks",
    "run_pipeline_hooks",
    "run_step_hooks",
    "set_secret_loader",
    "settle_after_engine",
    "settle_run",
    "start_run",
    "step_command",
    "write_artifact",
]
