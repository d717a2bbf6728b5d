"""The ``template`` orchestrator flavor and its config: the module the entry point names, kept light."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict

from conveyor.secrets import StoreURL
from conveyor.stack import Capability, ComponentType, Flavor

if TYPE_CHECKING:
    from conveyor_template._orchestrator import TemplateOrchestrator

INSTALL = "pip install ./core ./adapters/_template"


class TemplateOrchestratorConfig(BaseModel):
    """Config of the ``template`` orchestrator (``conveyor orchestrator register NAME --flavor template``)."""

    model_config = ConfigDict(extra="forbid")

    python: str | None = None
    """The interpreter that runs the steps (default: the one compiling the script)."""
    store_url: StoreURL | None = None
    """Metadata store URL the steps use (default: this repository's, never with a password)."""
    output_folder: str | None = None
    """Where ``run`` writes its scripts (default: ``template/`` in the repository's ``.conveyor``)."""


class TemplateOrchestratorFlavor(Flavor):
    """Runs pipelines as bash scripts that call the step command of each step in turn."""

    type = ComponentType.ORCHESTRATOR
    name = "template"
    install = INSTALL
    description = "writes a bash script per pipeline that runs its steps one after another, and runs it"
    # What the script honours. Not PARALLELISM (one step at a time), not SCHEDULES, TIMEOUTS,
    # RESOURCES, GPUS or CONTAINER_IMAGE: the stack refuses such pipelines when compiling.
    capabilities = frozenset({Capability.RETRIES})

    @property
    def config_class(self) -> type[BaseModel]:
        return TemplateOrchestratorConfig

    def implementation(self) -> type[TemplateOrchestrator]:
        from conveyor_template._orchestrator import TemplateOrchestrator

        return TemplateOrchestrator
