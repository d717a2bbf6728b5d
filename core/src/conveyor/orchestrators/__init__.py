"""Orchestrators that ship with conveyor, and the base class adapters extend."""

from conveyor.orchestrators._base import (
    BaseOrchestrator,
    LaunchContext,
    code_version,
    make_run_name,
    step_process_env,
)

__all__ = ["BaseOrchestrator", "LaunchContext", "code_version", "make_run_name", "step_process_env"]
