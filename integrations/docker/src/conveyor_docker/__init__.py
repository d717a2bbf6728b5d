"""Run conveyor steps in Docker containers.

Flavors (entry points of ``conveyor.flavors``): the ``docker`` image
builder, the ``default`` container registry, the ``local_docker``
orchestrator and the ``docker`` step operator. ``DockerSettings`` says what
goes into an image, per pipeline or per step.
"""

from conveyor_docker._containers import StepContainer, store_mounts
from conveyor_docker._flavors import (
    DefaultContainerRegistryConfig,
    DefaultContainerRegistryFlavor,
    DockerImageBuilderConfig,
    DockerImageBuilderFlavor,
    DockerStepOperatorConfig,
    DockerStepOperatorFlavor,
    LocalDockerOrchestratorConfig,
    LocalDockerOrchestratorFlavor,
)
from conveyor_docker._settings import SETTINGS_KEY, DockerSettings

__all__ = [
    "DefaultContainerRegistryConfig",
    "DefaultContainerRegistryFlavor",
    "DockerImageBuilderConfig",
    "DockerImageBuilderFlavor",
    "DockerSettings",
    "DockerStepOperatorConfig",
    "DockerStepOperatorFlavor",
    "LocalDockerOrchestratorConfig",
    "LocalDockerOrchestratorFlavor",
    "SETTINGS_KEY",
    "StepContainer",
    "store_mounts",
]
