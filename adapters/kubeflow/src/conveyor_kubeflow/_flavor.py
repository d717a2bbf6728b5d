"""The ``kubeflow`` orchestrator flavor and its config. Imports no kfp."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field, field_validator

from conveyor.secrets import SecretReference, StoreURL
from conveyor.stack import Capability, ComponentType, Flavor

if TYPE_CHECKING:
    from conveyor_kubeflow._orchestrator import KubeflowOrchestrator

SECRET_KEY = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?:[-._a-zA-Z0-9]+$")
"""``<Kubernetes secret name>:<key>``."""

ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
"""What Kubernetes accepts as an environment variable name."""


def check_secret_env(value: dict[str, str]) -> dict[str, str]:
    """Check ``{ENV_NAME: "secret-name:key"}``; raises ValueError naming the bad item."""
    for env, ref in value.items():
        if not ENV_NAME.match(env):
            raise ValueError(f"{env!r} is not an environment variable name")
        if not SECRET_KEY.match(ref):
            raise ValueError(f"{ref!r} (for {env}) is not SECRET_NAME:KEY of a Kubernetes secret")
    return value


class KubeflowOrchestratorConfig(BaseModel):
    """Config of the ``kubeflow`` orchestrator (``conveyor orchestrator register NAME --flavor kubeflow``)."""

    model_config = ConfigDict(extra="forbid")

    host: str | None = None
    """KFP's API endpoint (``https://kfp.example/``). Without it, running a pipeline
    builds and pushes its image and writes the KFP spec, and submits nothing."""
    token: SecretReference | None = None
    """A secret reference (``{{kfp.token}}``) to a bearer token for the KFP API."""
    namespace: str | None = None
    """Kubernetes namespace of a multi-user KFP."""
    experiment: str | None = None
    """Experiment the runs go into (default: the pipeline's name)."""
    service_account: str | None = None
    """Kubernetes service account the pipeline's pods run as."""
    pipeline_root: str | None = None
    """KFP's pipeline root (where KFP itself keeps outputs; conveyor's artifacts go to the artifact store)."""
    verify_ssl: bool = True
    """Check the API's TLS certificate."""
    ssl_ca_cert: str | None = None
    """CA bundle file for the API's certificate."""
    wait: bool = True
    """Wait for a submitted run to end and mirror its status into the conveyor run."""
    wait_timeout: float | None = Field(default=None, gt=0)
    """Seconds to wait for a submitted run (default: as long as it takes)."""
    poll_interval: float = Field(default=5.0, gt=0)
    """Seconds between status checks while waiting."""
    store_url: StoreURL | None = None
    """Metadata store URL the step pods use (default: this repository's, without its
    password). Never put a password here: give it through ``secret_env``."""
    secret_env: dict[str, str] = {}
    """Environment of every step from Kubernetes secrets, ``{ENV: "secret-name:key"}``
    (e.g. ``{"CONVEYOR_STORE_URL": "conveyor-store:url"}`` for a URL with its password)."""
    output_dir: str | None = None
    """Where running a pipeline writes its spec when no host is set (default: the current folder)."""
    python: str = "python"
    """The interpreter inside the image."""
    gpu_resource: str = "nvidia.com/gpu"
    """The Kubernetes resource GPUs are requested as (KFP's accelerator type)."""
    gpu_type_label: str | None = None
    """Node label that selects a GPU model (e.g. ``cloud.google.com/gke-accelerator``);
    needed by steps that ask for a ``gpu_type``."""
    image_pull_secrets: list[str] = []
    """Kubernetes secrets the pods pull the image with."""

    @field_validator("host")
    @classmethod
    def _check_host(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^/\s]+", value):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/") if value else value

    @field_validator("secret_env")
    @classmethod
    def _check_secret_env(cls, value: dict[str, str]) -> dict[str, str]:
        return check_secret_env(value)


class KubeflowOrchestratorFlavor(Flavor):
    """Compiles pipelines to KFP v2 specs and submits them with ``kfp.Client``."""

    type = ComponentType.ORCHESTRATOR
    name = "kubeflow"
    install = 'pip install "conveyor-kubeflow[kfp]" (from a clone: pip install ./core "./adapters/kubeflow[kfp]")'
    description = "compiles to a Kubeflow Pipelines (v2) spec; submits it when a KFP host is configured"
    capabilities = frozenset(
        {
            Capability.CONTAINER_IMAGE,
            Capability.SCHEDULES,
            Capability.RETRIES,
            Capability.TIMEOUTS,
            Capability.RESOURCES,
            Capability.GPUS,
            Capability.PARALLELISM,
        }
    )
    requires = (ComponentType.IMAGE_BUILDER, ComponentType.CONTAINER_REGISTRY)

    @property
    def config_class(self) -> type[BaseModel]:
        return KubeflowOrchestratorConfig

    def implementation(self) -> type[KubeflowOrchestrator]:
        from conveyor_kubeflow._orchestrator import KubeflowOrchestrator

        return KubeflowOrchestrator
