"""The ``kubeflow`` namespace of step and pipeline settings, validated at compile time.

A step sets ``@step(settings={"kubeflow": {...}})``; a pipeline sets defaults
for all its steps plus the pipeline's own options with
``@pipeline(settings={"kubeflow": {...}})``. A field a step sets replaces the
pipeline's. Unknown keys are errors.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from conveyor.ir import memory_quantity, parse_memory
from conveyor.stack import parse_settings
from conveyor_kubeflow._flavor import check_secret_env

NAMESPACE = "kubeflow"
"""The key of these settings in ``StepSettings.extra`` and ``PipelineSettings.extra``."""

CPU = re.compile(r"^([0-9]*[.])?[0-9]+m?$")
"""A CPU quantity as KFP accepts it (``2``, ``0.5``, ``500m``)."""
"""A memory quantity as KFP accepts it (``512Mi``, ``2G``, a number of bytes)."""
LABEL_KEY = re.compile(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
"""A Kubernetes label or annotation key (optional ``prefix/`` and a name)."""


def _check_quantity(value: str | None, pattern: re.Pattern[str], example: str) -> str | None:
    if value is not None and not pattern.match(value):
        raise ValueError(f"{value!r} is not a Kubernetes quantity KFP accepts (e.g. {example})")
    return value


class Toleration(BaseModel):
    """A Kubernetes toleration of a step's pod."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key: str | None = None
    operator: Literal["Equal", "Exists"] = "Equal"
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    toleration_seconds: int | None = Field(default=None, ge=0)


class VolumeMount(BaseModel):
    """An existing PersistentVolumeClaim mounted into a step's pod."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    pvc_name: str = Field(min_length=1)
    mount_path: str

    @field_validator("mount_path")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("must be an absolute path")
        return value


class StepKubeflowSettings(BaseModel):
    """Per-step KFP options (``settings={"kubeflow": {...}}`` on a step).

    ``resources`` of the step give the CPU and memory request and limit and the
    GPU count; these fields set a request or a limit on its own.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    cpu_request: str | None = None
    cpu_limit: str | None = None
    memory_request: str | None = None
    memory_limit: str | None = None
    accelerator_type: str | None = None
    """KFP's accelerator type (``nvidia.com/gpu``, ``TPU_V3``...), instead of the orchestrator's ``gpu_resource``."""
    node_selector: dict[str, str] | None = None
    tolerations: list[Toleration] | None = None
    volumes: list[VolumeMount] | None = None
    pod_labels: dict[str, str] | None = None
    pod_annotations: dict[str, str] | None = None
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] | None = None
    secret_env: dict[str, str] | None = None
    """Environment from Kubernetes secrets, ``{ENV: "secret-name:key"}`` (added to the orchestrator's)."""
    retry_backoff_factor: float | None = Field(default=None, ge=1)
    """Multiplier of the retry delay after each failed try (default 1: a constant delay)."""
    retry_max_delay: float | None = Field(default=None, gt=0, le=3600)
    """Seconds the retry delay may grow to (KFP allows at most an hour)."""

    @field_validator("cpu_request", "cpu_limit")
    @classmethod
    def _check_cpu(cls, value: str | None) -> str | None:
        return _check_quantity(value, CPU, "500m or 2")

    @field_validator("memory_request", "memory_limit")
    @classmethod
    def _check_memory(cls, value: str | None) -> str | None:
        # The one memory grammar of conveyor (1.5Gi, 512MB, bytes), written as an exact Kubernetes quantity.
        return None if value is None else memory_quantity(parse_memory(value))

    @field_validator("node_selector", "pod_labels", "pod_annotations")
    @classmethod
    def _check_keys(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        for key in value or {}:
            if not LABEL_KEY.match(key):
                raise ValueError(f"{key!r} is not a Kubernetes label key")
        return value

    @field_validator("secret_env")
    @classmethod
    def _check_secret_env(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        return check_secret_env(value) if value is not None else None


class PipelineKubeflowSettings(StepKubeflowSettings):
    """Pipeline-wide KFP options: defaults for every step, and the pipeline's own."""

    display_name: str | None = None
    """The name KFP's UI shows (default: the pipeline's name)."""
    description: str | None = None


def _parse(model: type[BaseModel], data: Any, where: str) -> Any:
    return parse_settings(model, data, namespace=NAMESPACE, where=where)


def pipeline_settings(extra: dict[str, Any], pipeline: str) -> PipelineKubeflowSettings:
    """The validated ``kubeflow`` settings of a pipeline.

    Raises:
        ConfigError: an unknown key or a bad value.
    """
    return _parse(PipelineKubeflowSettings, extra.get(NAMESPACE), f"pipeline {pipeline!r}")
