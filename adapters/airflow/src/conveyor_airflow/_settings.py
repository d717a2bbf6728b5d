"""The ``airflow`` namespace of step and pipeline settings, validated at compile time.

A step sets ``@step(settings={"airflow": {...}})``; a pipeline sets defaults
for all its steps plus DAG-wide options with
``@pipeline(settings={"airflow": {...}})``. Unknown keys are errors.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from conveyor.stack import parse_settings
from conveyor_airflow._flavor import OperatorMode

NAMESPACE = "airflow"
"""The key of these settings in ``StepSettings.extra`` and ``PipelineSettings.extra``."""

DAG_ID_PATTERN = re.compile(r"^[A-Za-z0-9_.-]{1,200}$")
"""What a dag_id given in settings must look like (Airflow's key rules, ASCII only)."""


class StepAirflowSettings(BaseModel):
    """Per-step Airflow options (``settings={"airflow": {...}}`` on a step)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    operator: OperatorMode | None = None
    """Run this step with another operator than the orchestrator's default."""
    pool: str | None = None
    pool_slots: int | None = Field(default=None, ge=1)
    queue: str | None = None
    priority_weight: int | None = None
    weight_rule: Literal["downstream", "upstream", "absolute"] | None = None
    owner: str | None = None
    executor: str | None = None
    run_as_user: str | None = None
    max_active_tis_per_dag: int | None = Field(default=None, ge=1)
    max_active_tis_per_dagrun: int | None = Field(default=None, ge=1)
    retry_exponential_backoff: float | None = Field(default=None, ge=0)
    """Multiplier of the retry delay after each failed try (0: constant delay)."""
    max_retry_delay: float | None = Field(default=None, gt=0)
    """Seconds the retry delay may grow to."""
    doc_md: str | None = None
    # kubernetes_pod only
    node_selector: dict[str, str] | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None
    service_account_name: str | None = None
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] | None = None


KUBERNETES_ONLY = ("node_selector", "labels", "annotations", "service_account_name", "image_pull_policy")
"""Step options that only the ``kubernetes_pod`` operator has."""


class PipelineAirflowSettings(StepAirflowSettings):
    """Pipeline-wide Airflow options: defaults for every step, and the DAG's own options."""

    dag_id: str | None = None
    """The DAG's id (default: the pipeline name, made a valid Airflow key)."""
    description: str | None = None
    tags: list[str] | None = None
    """Tags of the DAG, added to the orchestrator's."""
    max_active_runs: int | None = Field(default=None, ge=1)
    max_active_tasks: int | None = Field(default=None, ge=1)
    dagrun_timeout: float | None = Field(default=None, gt=0)
    """Seconds after which a DAG run fails."""
    is_paused_upon_creation: bool | None = None

    @field_validator("dag_id")
    @classmethod
    def _check_dag_id(cls, value: str | None) -> str | None:
        if value is not None and not DAG_ID_PATTERN.match(value):
            raise ValueError("must be 1-200 characters of A-Z a-z 0-9 _ . -")
        return value


def _parse(model: type[BaseModel], data: Any, where: str) -> Any:
    return parse_settings(model, data, namespace=NAMESPACE, where=where)


def pipeline_settings(extra: dict[str, Any], pipeline: str) -> PipelineAirflowSettings:
    """The validated ``airflow`` settings of a pipeline.

    Raises:
        ConfigError: an unknown key or a bad value.
    """
    return _parse(PipelineAirflowSettings, extra.get(NAMESPACE), f"pipeline {pipeline!r}")
