"""Orchestrators: the base class adapters extend, and the local family that ships with conveyor.

An adapter subclasses :class:`BaseOrchestrator` and implements its hooks;
see ``docs/extending.md`` for the whole contract.
"""

from conveyor.orchestrators._base import (
    BaseOrchestrator,
    BaseStepOperator,
    DeployedPipeline,
    LaunchContext,
    needs_images,
    step_process_env,
    write_file_atomically,
)
from conveyor.orchestrators._local import (
    LocalOrchestrator,
    LocalOrchestratorConfig,
    LocalOrchestratorFlavor,
    LocalScheduler,
)

__all__ = [
    "BaseOrchestrator",
    "BaseStepOperator",
    "DeployedPipeline",
    "LaunchContext",
    "LocalOrchestrator",
    "LocalOrchestratorConfig",
    "LocalOrchestratorFlavor",
    "LocalScheduler",
    "needs_images",
    "step_process_env",
    "write_file_atomically",
]
