"""Run and deploy conveyor pipelines as Prefect 3 flows.

``import conveyor_prefect`` loads no Prefect: the names below are imported on
first use, so the flavor entry point stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "FlowSpec": "conveyor_prefect._compile",
    "PrefectOrchestrator": "conveyor_prefect._orchestrator",
    "PrefectOrchestratorConfig": "conveyor_prefect._flavor",
    "PrefectOrchestratorFlavor": "conveyor_prefect._flavor",
    "TaskSpec": "conveyor_prefect._compile",
    "check_server": "conveyor_prefect._orchestrator",
    "compile_flow": "conveyor_prefect._compile",
    "run_deployment": "conveyor_prefect._flow",
}

__all__ = [
    "FlowSpec",
    "PrefectOrchestrator",
    "PrefectOrchestratorConfig",
    "PrefectOrchestratorFlavor",
    "TaskSpec",
    "__version__",
    "check_server",
    "compile_flow",
    "run_deployment",
]

if TYPE_CHECKING:
    from conveyor_prefect._compile import FlowSpec, TaskSpec, compile_flow
    from conveyor_prefect._flavor import PrefectOrchestratorConfig, PrefectOrchestratorFlavor
    from conveyor_prefect._flow import run_deployment
    from conveyor_prefect._orchestrator import PrefectOrchestrator, check_server


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'conveyor_prefect' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
