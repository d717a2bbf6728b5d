"""Orchestrators that ship with conveyor, and the base class adapters extend."""

from conveyor.orchestrators._base import (
    BaseOrchestrator,
    BaseStepOperator,
    LaunchContext,
    code_version,
    make_run_name,
    needs_images,
    step_process_env,
    write_file_atomically,
)

__all__ = [
    "BaseOrchestrator",
    "BaseStepOperator",
    "LaunchContext",
    "code_version",
    "make_run_name",
    "needs_images",
    "step_process_env",
    "write_file_atomically",
]
