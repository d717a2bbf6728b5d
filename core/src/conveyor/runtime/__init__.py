"""The step entrypoint: ``python -m conveyor.runtime run-step ...``, the same on every engine."""

from conveyor.runtime._context import StepContext, get_step_context
from conveyor.runtime._executor import RunEnvironment, cache_key, execute_step, finalize_run, set_secret_loader
from conveyor.runtime._main import entrypoint_command, main

__all__ = [
    "RunEnvironment",
    "StepContext",
    "cache_key",
    "entrypoint_command",
    "execute_step",
    "finalize_run",
    "get_step_context",
    "main",
    "set_secret_loader",
]
