"""The step entrypoint, ``python -m conveyor.runtime run-step ...``, the same on every engine.

Orchestrators render :func:`step_command` and :func:`finish_command` into
their engine's tasks, create or join runs with :func:`start_run`, settle
runs with :func:`settle_run` (which runs the hooks then due) and runs their
engine ended with :func:`settle_after_engine`.
"""

from conveyor.runtime._context import StepContext, get_step_context
from conveyor.runtime._executor import (
    RunEnvironment,
    cache_key,
    execute_step,
    finalize_run,
    is_last_attempt,
    set_secret_loader,
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
from conveyor.runtime._runs import (
    check_run_name_template,
    code_version,
    make_run_name,
    settle_after_engine,
    start_run,
)

__all__ = [
    "HookContext",
    "RunEnvironment",
    "StepContext",
    "cache_key",
    "check_run_name_template",
    "code_version",
    "execute_step",
    "finalize_run",
    "finish_command",
    "get_step_context",
    "is_last_attempt",
    "main",
    "make_run_name",
    "mask_file_descriptors",
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
]
