"""The ``airflow`` orchestrator flavor and its config. Imports no Airflow."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from conveyor.secrets import SecretReference, StoreURL
from conveyor.stack import Capability, ComponentType, Flavor

if TYPE_CHECKING:
    from conveyor_airflow._orchestrator import AirflowOrchestrator

OperatorMode = Literal["python", "docker", "kubernetes_pod"]
"""How a task runs its step: ``python`` (a local interpreter, through BashOperator),
``docker`` (DockerOperator) or ``kubernetes_pod`` (KubernetesPodOperator)."""


class AirflowOrchestratorConfig(BaseModel):
    """Config of the ``airflow`` orchestrator (``conveyor orchestrator register NAME --flavor airflow``)."""

    model_config = ConfigDict(extra="forbid")

    dags_folder: str | None = None
    """Airflow's dags folder: running a pipeline writes its DAG file there."""
    operator: OperatorMode = "python"
    """How tasks run their step unless a step says otherwise (``settings={"airflow": {"operator": ...}}``)."""
    python: str | None = None
    """``python`` mode: the interpreter that runs steps (default: the one compiling the DAG).
    It needs conveyor and the pipeline's code, not Airflow."""
    store_url: StoreURL | None = None
    """Metadata store URL the tasks use (default: this repository's, without its password;
    a password comes from the worker, e.g. PGPASSWORD or a MySQL option file)."""
    source_root: str | None = None
    """Folder with the pipeline's code on the workers (default in ``python`` mode: the
    pipeline's source folder at compile time; container images bring their own)."""
    image: str | None = None
    """Container modes: image to run instead of building one with the stack's image builder."""
    container_python: str = "python"
    """Container modes: the interpreter inside the image."""
    docker_url: str = "unix://var/run/docker.sock"
    """``docker`` mode: the Docker daemon."""
    network_mode: str = "host"
    """``docker`` mode: the containers' network (always set explicitly)."""
    docker_mounts: list[str] = []
    """``docker`` mode: bind mounts ``HOST_PATH:CONTAINER_PATH[:ro]`` (e.g. a local artifact store)."""
    namespace: str | None = None
    """``kubernetes_pod`` mode: namespace of the pods."""
    in_cluster: bool | None = None
    """``kubernetes_pod`` mode: use the in-cluster Kubernetes config."""
    kube_config_file: str | None = None
    """``kubernetes_pod`` mode: kubeconfig file on the workers."""
    gpu_resource: str = "nvidia.com/gpu"
    """``kubernetes_pod`` mode: the resource name GPUs are requested as."""
    gpu_type_label: str | None = None
    """``kubernetes_pod`` mode: node label that selects a GPU type (e.g. ``cloud.google.com/gke-accelerator``)."""
    tags: list[str] = ["conveyor"]
    """Tags of every DAG."""
    api_url: str | None = None
    """Airflow's API server (``http://host:8080``): running a pipeline then triggers its DAG."""
    api_username: str | None = None
    """The API user, or a secret reference to it (``{{airflow_api.username}}``)."""
    api_password: SecretReference | None = None
    """A secret reference (``{{airflow_api.password}}``) to the API password."""
    wait: bool = True
    """Wait for a triggered run to end and mirror its status."""
    wait_timeout: float | None = Field(default=None, gt=0)
    """Seconds to wait for a triggered run (default: as long as it takes)."""
    parse_timeout: float = Field(default=300.0, gt=0)
    """Seconds to wait for Airflow to parse a new or changed DAG file."""
    poll_interval: float = Field(default=2.0, gt=0)
    """Seconds between status checks."""
    unpause: bool = True
    """Unpause the DAG when deploying it (new DAGs start paused in Airflow)."""
    api_timeout: float = Field(default=30.0, gt=0)
    """Seconds before one API request gives up."""

    @field_validator("docker_mounts")
    @classmethod
    def _check_mounts(cls, value: list[str]) -> list[str]:
        for item in value:
            parts = item.split(":")
            if len(parts) not in (2, 3) or not all(parts[:2]) or (len(parts) == 3 and parts[2] not in ("ro", "rw")):
                raise ValueError(f"{item!r} is not HOST_PATH:CONTAINER_PATH[:ro]")
        return value


class AirflowOrchestratorFlavor(Flavor):
    """Exports pipelines as Airflow DAG files, and triggers them through Airflow's API."""

    type = ComponentType.ORCHESTRATOR
    name = "airflow"
    install = "pip install conveyor-airflow (from a clone: pip install ./core ./adapters/airflow)"
    description = "writes an Airflow DAG per pipeline; triggers it when an Airflow API is configured"
    # Resources, GPUs and images depend on the operator mode; the compiler checks them
    # per step, and python-mode pipelines build no image.
    capabilities = frozenset(
        {
            Capability.SCHEDULES,
            Capability.RETRIES,
            Capability.TIMEOUTS,
            Capability.PARALLELISM,
            Capability.RESOURCES,
            Capability.GPUS,
            Capability.CONTAINER_IMAGE,
        }
    )

    @property
    def config_class(self) -> type[BaseModel]:
        return AirflowOrchestratorConfig

    def implementation(self) -> type[AirflowOrchestrator]:
        from conveyor_airflow._orchestrator import AirflowOrchestrator

        return AirflowOrchestrator
