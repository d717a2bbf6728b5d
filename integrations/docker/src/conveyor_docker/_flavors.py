"""The flavors of conveyor-docker and their config models.

This module is what the ``conveyor.flavors`` entry points name, so it imports
only pydantic and conveyor's flavor base; the docker SDK is imported when a
component is used.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from conveyor.secrets import SecretReference
from conveyor.stack import Capability, ComponentType, Flavor

INSTALL = "pip install conveyor-docker (from a clone: pip install ./core ./integrations/docker)"
"""How the flavors of conveyor-docker are installed."""


class DockerImageBuilderConfig(BaseModel):
    """Config of the ``docker`` image builder."""

    model_config = ConfigDict(extra="forbid")

    parent_image: str | None = None
    """Default parent image (default: ``python:<this Python's major.minor>-slim``)."""
    cache_dir: str | None = None
    """Where wheels prepared for images are kept (default: ``~/.cache/conveyor/docker``)."""


class DefaultContainerRegistryConfig(BaseModel):
    """Config of the ``default`` container registry (any registry speaking the v2 API)."""

    model_config = ConfigDict(extra="forbid")

    uri: str = Field(min_length=1)
    """``host[:port][/namespace]``, the prefix of pushed image names (``127.0.0.1:5000/ml``)."""
    username: str | None = None
    """User name, or a secret reference such as ``{{reg.username}}``."""
    password: SecretReference | None = None
    """A secret reference such as ``{{reg.password}}``; never the password itself."""


class LocalDockerOrchestratorConfig(BaseModel):
    """Config of the ``local_docker`` orchestrator."""

    model_config = ConfigDict(extra="forbid")

    max_workers: int = Field(default=8, ge=1)
    """How many step containers may run at once."""
    stop_timeout: float = Field(default=10.0, ge=0)
    """Seconds a container gets to stop after Ctrl-C before it is killed."""
    run_args: dict[str, JsonValue] = Field(default_factory=dict)
    """Extra keyword arguments of docker's ``containers.create`` (``shm_size``, ``devices``, ...)."""


class DockerStepOperatorConfig(BaseModel):
    """Config of the ``docker`` step operator."""

    model_config = ConfigDict(extra="forbid")

    stop_timeout: float = Field(default=10.0, ge=0)
    """Seconds a container gets to stop after Ctrl-C before it is killed."""
    run_args: dict[str, JsonValue] = Field(default_factory=dict)
    """Extra keyword arguments of docker's ``containers.create``."""


class DockerImageBuilderFlavor(Flavor):
    """Builds images with the local Docker daemon."""

    type = ComponentType.IMAGE_BUILDER
    name = "docker"
    install = INSTALL
    description = "builds images with the local Docker daemon (offline installs from wheels prepared here)"
    requires = (ComponentType.CONTAINER_REGISTRY,)

    @property
    def config_class(self) -> type[BaseModel]:
        return DockerImageBuilderConfig

    def implementation(self) -> Any:
        from conveyor_docker._image_builder import DockerImageBuilder

        return DockerImageBuilder


class DefaultContainerRegistryFlavor(Flavor):
    """Any container registry that speaks the Docker registry v2 API."""

    type = ComponentType.CONTAINER_REGISTRY
    name = "default"
    install = INSTALL
    description = "any registry speaking the v2 API (credentials by secret reference)"

    @property
    def config_class(self) -> type[BaseModel]:
        return DefaultContainerRegistryConfig

    def validate_config(self, config: dict[str, Any], *, component: str) -> dict[str, Any]:
        from conveyor.exceptions import ConfigError

        clean = super().validate_config(config, component=component)
        uri = str(clean["uri"])
        if "://" in uri or uri.endswith("/") or " " in uri:
            raise ConfigError(
                f"container-registry {component!r} (default): uri {uri!r} is not host[:port][/namespace]",
                "e.g. --uri 127.0.0.1:5000/ml",
            )
        return clean

    def implementation(self) -> Any:
        from conveyor_docker._registry import DefaultContainerRegistry

        return DefaultContainerRegistry


class LocalDockerOrchestratorFlavor(Flavor):
    """Runs every step as a container on this machine."""

    type = ComponentType.ORCHESTRATOR
    name = "local_docker"
    install = INSTALL
    description = "runs each step in a container of the pipeline's image on this machine"
    capabilities = frozenset(
        {
            Capability.CONTAINER_IMAGE,
            Capability.PARALLELISM,
            Capability.RETRIES,
            Capability.TIMEOUTS,
            Capability.RESOURCES,
        }
    )
    requires = (ComponentType.IMAGE_BUILDER, ComponentType.CONTAINER_REGISTRY)

    @property
    def config_class(self) -> type[BaseModel]:
        return LocalDockerOrchestratorConfig

    def implementation(self) -> Any:
        from conveyor_docker._orchestrator import LocalDockerOrchestrator

        return LocalDockerOrchestrator


class DockerStepOperatorFlavor(Flavor):
    """Runs the steps that ask for it (``@step(step_operator="docker")``) in containers."""

    type = ComponentType.STEP_OPERATOR
    name = "docker"
    install = INSTALL
    description = "runs the steps that ask for it in a container of the pipeline's image"
    capabilities = frozenset(
        {Capability.CONTAINER_IMAGE, Capability.RETRIES, Capability.TIMEOUTS, Capability.RESOURCES}
    )
    requires = (ComponentType.IMAGE_BUILDER, ComponentType.CONTAINER_REGISTRY)

    @property
    def config_class(self) -> type[BaseModel]:
        return DockerStepOperatorConfig

    def implementation(self) -> Any:
        from conveyor_docker._step_operator import DockerStepOperator

        return DockerStepOperator
