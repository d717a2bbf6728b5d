"""conveyor: write an ML pipeline once as typed Python functions, run it anywhere.

``import conveyor`` is cheap: the names below are imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# name -> module that defines it; imported lazily so that importing conveyor
# (and running `conveyor --help`) loads neither pydantic nor SQLAlchemy.
_EXPORTS = {
    "ArtifactConfig": "conveyor.dsl",
    "BaseMaterializer": "conveyor.materializers",
    "Client": "conveyor.client",
    "ConveyorError": "conveyor.exceptions",
    "DeployedPipeline": "conveyor.orchestrators",
    "HookContext": "conveyor.runtime",
    "Model": "conveyor.dsl",
    "Pipeline": "conveyor.dsl",
    "ResourceSettings": "conveyor.ir",
    "Schedule": "conveyor.ir",
    "Step": "conveyor.dsl",
    "StepContext": "conveyor.runtime",
    "deploy_pipeline": "conveyor._launch",
    "deployment_for": "conveyor._launch",
    "export_pipeline": "conveyor._launch",
    "get_step_context": "conveyor.runtime",
    "load_artifact": "conveyor.client",
    "log_metadata": "conveyor.runtime",
    "pipeline": "conveyor.dsl",
    "save_artifact": "conveyor.client",
    "step": "conveyor.dsl",
    "write_run_configuration_template": "conveyor.dsl",
}

__all__ = [
    "ArtifactConfig",
    "BaseMaterializer",
    "Client",
    "ConveyorError",
    "DeployedPipeline",
    "HookContext",
    "Model",
    "Pipeline",
    "ResourceSettings",
    "Schedule",
    "Step",
    "StepContext",
    "__version__",
    "deploy_pipeline",
    "deployment_for",
    "export_pipeline",
    "get_step_context",
    "load_artifact",
    "log_metadata",
    "pipeline",
    "save_artifact",
    "step",
    "write_run_configuration_template",
]

if TYPE_CHECKING:
    from conveyor._launch import deploy_pipeline, deployment_for, export_pipeline
    from conveyor.client import Client, load_artifact, save_artifact
    from conveyor.dsl import ArtifactConfig, Model, Pipeline, Step, pipeline, step, write_run_configuration_template
    from conveyor.exceptions import ConveyorError
    from conveyor.ir import ResourceSettings, Schedule
    from conveyor.materializers import BaseMaterializer
    from conveyor.orchestrators import DeployedPipeline
    from conveyor.runtime import HookContext, StepContext, get_step_context, log_metadata


def _one_line_errors() -> None:
    """Show a ConveyorError that reaches the top of a script as its one line, not a traceback.

    ``CONVEYOR_TRACEBACK=1`` brings the traceback back; other exceptions are untouched.
    """
    import os
    import sys

    previous = sys.excepthook

    def hook(exc_type: Any, exc: Any, tb: Any) -> None:
        from conveyor.exceptions import ConveyorError

        if isinstance(exc, ConveyorError) and not os.environ.get("CONVEYOR_TRACEBACK"):
            print(f"conveyor: error: {exc}", file=sys.stderr)
            return
        previous(exc_type, exc, tb)

    hook._conveyor = True  # type: ignore[attr-defined]
    if not getattr(previous, "_conveyor", False):
        sys.excepthook = hook


_one_line_errors()


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'conveyor' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
