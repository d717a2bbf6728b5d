"""The ``dagster`` orchestrator flavor and its config. Imports no Dagster."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from conveyor.secrets import StoreURL
from conveyor.stack import Capability, ComponentType, Flavor

if TYPE_CHECKING:
    from conveyor_dagster._orchestrator import DagsterOrchestrator

StepMode = Literal["python", "docker"]
"""How an op runs its step: ``python`` (a process of a local interpreter) or ``docker``
(a container of the pipeline's image)."""


class DagsterOrchestratorConfig(BaseModel):
    """Config of the ``dagster`` orchestrator (``conveyor orchestrator register NAME --flavor dagster``)."""

    model_config = ConfigDict(extra="forbid")

    mode: StepMode = "python"
    """How ops run their step unless a step says otherwise (``settings={"dagster": {"mode": ...}}``)."""
    python: str | None = None
    """``python`` mode: the interpreter that runs steps (default: the one compiling the job).
    It needs conveyor and the pipeline's code, not Dagster."""
    store_url: StoreURL | None = None
    """Metadata store URL the steps use (default: this repository's, without its password;
    a password comes from the Dagster side's environment, e.g. PGPASSWORD)."""
    source_root: str | None = None
    """Folder with the pipeline's code where the ops run (default in ``python`` mode: the
    pipeline's source folder at compile time; images bring their own)."""
    image: str | None = None
    """``docker`` mode: image to run instead of building one with the stack's image builder."""
    container_python: str = "python"
    """``docker`` mode: the interpreter inside the image."""
    docker_url: str = "unix://var/run/docker.sock"
    """``docker`` mode: the Docker daemon the ops start containers on."""
    network_mode: str = "host"
    """``docker`` mode: the containers' network."""
    docker_mounts: list[str] = []
    """``docker`` mode: bind mounts ``HOST_PATH:CONTAINER_PATH[:ro]`` besides the local stores' folders."""
    dagster_home: str | None = None
    """``DAGSTER_HOME`` of the runs this orchestrator executes (default: ``$DAGSTER_HOME``, else
    ``.conveyor/dagster`` of the repository). A new one gets a ``dagster.yaml`` with telemetry off."""
    output_folder: str | None = None
    """Where running a pipeline writes its definitions file (default: ``conveyor/`` in the Dagster home)."""
    max_concurrent: int | None = Field(default=None, ge=1)
    """Ops that run at once (Dagster's multiprocess executor; default: its own, the CPU count)."""
    start_method: Literal["spawn", "forkserver"] | None = None
    """How the multiprocess executor starts op processes (default: Dagster's, ``spawn``)."""
    tags: dict[str, str] = {}
    """Tags of every job (and so of its runs), e.g. ``{"team": "ml"}``."""
    timezone: str = "UTC"
    """Time zone of cron schedules."""
    start_schedules: bool = True
    """Schedules start running when Dagster loads them (otherwise they wait to be turned on in Dagster)."""
    finish_sensor: bool = True
    """Add run status sensors that settle the conveyor run of a failed or cancelled Dagster run
    (they need the Dagster daemon)."""
    sensor_interval: int = Field(default=30, ge=1)
    """Seconds between evaluations of those sensors."""

    @field_validator("docker_mounts")
    @classmethod
    def _check_mounts(cls, value: list[str]) -> list[str]:
        for item in value:
            parts = item.split(":")
            if len(parts) not in (2, 3) or not all(parts[:2]) or (len(parts) == 3 and parts[2] not in ("ro", "rw")):
                raise ValueError(f"{item!r} is not HOST_PATH:CONTAINER_PATH[:ro]")
        return value


class DagsterOrchestratorFlavor(Flavor):
    """Compiles pipelines into Dagster jobs (one op per step) and runs them with Dagster's executor."""

    type = ComponentType.ORCHESTRATOR
    name = "dagster"
    install = 'pip install "conveyor-dagster[dagster]" (from a clone: pip install ./core "./adapters/dagster[dagster]")'
    description = "writes a Dagster job per pipeline (one op per step) and runs it with Dagster"
    # No TIMEOUTS: Dagster has no op timeout (a run-wide limit is the dagster/max_runtime tag).
    # No RESOURCES/GPUS: neither an op process nor its container gets cpu/memory/GPU requests.
    capabilities = frozenset(
        {
            Capability.SCHEDULES,
            Capability.RETRIES,
            Capability.PARALLELISM,
            Capability.CONTAINER_IMAGE,
        }
    )

    @property
    def config_class(self) -> type[BaseModel]:
        return DagsterOrchestratorConfig

    def implementation(self) -> type[DagsterOrchestrator]:
        from conveyor_dagster._orchestrator import DagsterOrchestrator

        return DagsterOrchestrator
