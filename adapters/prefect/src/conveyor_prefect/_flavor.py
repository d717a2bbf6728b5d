"""The ``prefect`` orchestrator flavor: config and capabilities (imports no Prefect)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

from conveyor.stack import Capability, ComponentType, Flavor

if TYPE_CHECKING:
    from conveyor_prefect._orchestrator import PrefectOrchestrator


class PrefectOrchestratorConfig(BaseModel):
    """Config of the ``prefect`` orchestrator."""

    model_config = ConfigDict(extra="forbid")

    api_url: str | None = None
    """Prefect API (``http://127.0.0.1:4200/api``); default: ``PREFECT_API_URL``, else Prefect's own profile."""
    step_mode: Literal["in_process", "subprocess", "container"] = "in_process"
    """Where each task runs its step: in the flow's process, in a step process, or in a container of the
    pipeline's image (built by the stack's image builder; needs conveyor-docker)."""
    max_workers: int | None = Field(default=None, ge=1)
    """Threads of the flow's task runner (how many steps run at once); default: one per step."""
    work_pool: str = "conveyor"
    """Work pool of scheduled deployments (created when missing)."""
    work_pool_type: Literal["process", "docker"] = "process"
    """Type of that work pool; ``docker`` runs each flow run in a container of the pipeline's image
    (its workers need prefect-docker)."""
    deployment_name: str | None = None
    """Name of the Prefect deployment; default: the pipeline's name."""
    tags: list[str] = []
    """Extra tags of every flow run and deployment."""
    server_timeout: float = Field(default=3.0, gt=0)
    """Seconds the health check of the Prefect API may take before the run is refused."""
    cancel_poll_interval: float = Field(default=1.0, gt=0)
    """Seconds between checks whether the flow run was cancelled in Prefect."""


class PrefectOrchestratorFlavor(Flavor):
    """Runs a pipeline as a Prefect flow, one Prefect task per step; schedules become deployments."""

    type = ComponentType.ORCHESTRATOR
    name = "prefect"
    install = "pip install conveyor-prefect (from a clone: pip install ./core ./adapters/prefect)"
    description = "runs pipelines as Prefect flows (one task per step); schedules become Prefect deployments"
    # CONTAINER_IMAGE: it can run steps (step_mode: container) or whole flows (a docker
    # work pool) in the pipeline's image; PrefectOrchestrator.needs_images says when it does.
    capabilities = frozenset(
        {
            Capability.SCHEDULES,
            Capability.PARALLELISM,
            Capability.RETRIES,
            Capability.TIMEOUTS,
            Capability.CONTAINER_IMAGE,
        }
    )

    @property
    def config_class(self) -> type[BaseModel]:
        return PrefectOrchestratorConfig

    def implementation(self) -> type[PrefectOrchestrator]:
        from conveyor_prefect._orchestrator import PrefectOrchestrator

        return PrefectOrchestrator
