"""The ``dagster`` namespace of step and pipeline settings, validated at compile time.

A step sets ``@step(settings={"dagster": {...}})``; a pipeline sets job options
and defaults for its steps with ``@pipeline(settings={"dagster": {...}})``.
Unknown keys are errors.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from conveyor.stack import parse_settings
from conveyor_dagster._flavor import StepMode
from conveyor_dagster._names import is_dagster_name

NAMESPACE = "dagster"
"""The key of these settings in ``StepSettings.extra`` and ``PipelineSettings.extra``."""

CONCURRENCY_TAG = "dagster/concurrency_key"
"""The op tag Dagster reads as the op's pool, like ``pool``."""
POOL = re.compile(r"^\S+$")
"""Dagster's rule for pool names."""
TAG_KEY = re.compile(r"^([A-Za-z0-9_.-]{1,63}/)?[A-Za-z0-9_.-]{1,63}$")
"""Dagster's rule for tag keys: an optional ``namespace/`` and a name, each 1-63 of ``A-Za-z0-9_.-``."""


def check_tags(tags: dict[str, str] | None) -> dict[str, str] | None:
    """Tag keys Dagster accepts (values are any text).

    Raises:
        ValueError: a key Dagster would refuse.
    """
    for key in tags or {}:
        if not TAG_KEY.match(key):
            raise ValueError(f"tag key {key!r} is not [namespace/]name of 1-63 characters A-Z a-z 0-9 _ . -")
    return tags


class _OpDefaults(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    retry_backoff: Literal["linear", "exponential"] | None = None
    """How the delay between retries grows (Dagster's ``Backoff``); default: constant."""
    retry_jitter: Literal["full", "plus_minus"] | None = None
    """Random jitter of the delay (Dagster's ``Jitter``)."""
    mode: StepMode | None = None
    """Run the step(s) in another mode than the orchestrator's."""
    pool: str | None = None
    """Dagster concurrency pool of the op(s) (no whitespace)."""

    @field_validator("pool")
    @classmethod
    def _check_pool(cls, value: str | None) -> str | None:
        # Python's idea of whitespace, as Dagster checks it (pydantic's patterns see less).
        if value is not None and not POOL.match(value):
            raise ValueError("must be one or more characters, none of them whitespace")
        return value


class StepDagsterSettings(_OpDefaults):
    """Per-step Dagster options (``settings={"dagster": {...}}`` on a step)."""

    tags: dict[str, str] | None = None
    """Tags of the op, besides ``conveyor/step``."""
    description: str | None = None
    """Description of the op (default: names the conveyor step)."""

    @field_validator("tags")
    @classmethod
    def _check_tags(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        return check_tags(value)

    @model_validator(mode="after")
    def _one_pool(self) -> StepDagsterSettings:
        key = (self.tags or {}).get(CONCURRENCY_TAG)
        if self.pool is not None and key is not None and key != self.pool:
            raise ValueError(f"pool {self.pool!r} and tag {CONCURRENCY_TAG}={key!r} name two pools")
        return self


class PipelineDagsterSettings(_OpDefaults):
    """Pipeline-wide Dagster options: the job's own, and ``mode``/``pool``/retry defaults for every op."""

    job_name: str | None = None
    """The job's name (default: the pipeline name, made a valid Dagster name)."""
    description: str | None = None
    """Description of the job."""
    tags: dict[str, str] | None = None
    """Tags of the job and its runs, added to the orchestrator's (``dagster/max_runtime`` limits a run's time)."""
    max_concurrent: int | None = Field(default=None, ge=1)
    """Ops of one run that run at once (overrides the orchestrator's)."""
    timezone: str | None = Field(default=None, min_length=1)
    """Time zone of the cron schedule (overrides the orchestrator's)."""

    @field_validator("tags")
    @classmethod
    def _check_tags(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        return check_tags(value)

    @field_validator("job_name")
    @classmethod
    def _check_job_name(cls, value: str | None) -> str | None:
        if value is not None and not is_dagster_name(value):
            raise ValueError("must be A-Z a-z 0-9 _ and not a Python keyword")
        return value


def step_settings(extra: dict[str, Any], step_id: str) -> StepDagsterSettings:
    """The validated ``dagster`` settings of a step.

    Raises:
        ConfigError: an unknown key or a bad value.
    """
    return parse_settings(StepDagsterSettings, extra.get(NAMESPACE), namespace=NAMESPACE, where=f"step {step_id!r}")


def pipeline_settings(extra: dict[str, Any], pipeline: str) -> PipelineDagsterSettings:
    """The validated ``dagster`` settings of a pipeline.

    Raises:
        ConfigError: an unknown key or a bad value.
    """
    return parse_settings(
        PipelineDagsterSettings, extra.get(NAMESPACE), namespace=NAMESPACE, where=f"pipeline {pipeline!r}"
    )
