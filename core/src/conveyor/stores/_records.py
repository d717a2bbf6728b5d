"""Rows of the metadata store as plain, immutable records, and the clock and ids they use."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any


def now() -> datetime:
    """The current time in UTC (what every record's timestamps use)."""
    return datetime.now(timezone.utc)


def new_id() -> str:
    """A fresh random id (32 hex digits)."""
    return uuid.uuid4().hex


@dataclass(frozen=True)
class PipelineRecord:
    """A pipeline known to the store."""

    id: str
    name: str
    created: datetime


@dataclass(frozen=True)
class RunRecord:
    """One run of a pipeline."""

    id: str
    name: str
    pipeline_id: str
    deployment_id: str
    run_key: str | None
    status: str
    created: datetime
    started: datetime | None
    ended: datetime | None
    parameters: dict[str, Any]
    stack_name: str
    orchestrator: str
    orchestrator_run_id: str | None
    code_commit: str | None
    code_dirty: bool | None
    host: str | None
    pid: int | None
    pid_started: float | None
    error: str | None
    extra: dict[str, Any]
    tags: tuple[str, ...] = ()
    """The run's tags, sorted (its pipeline's, given when it started, and those added since)."""


@dataclass(frozen=True)
class StepRunRecord:
    """One step of one run."""

    id: str
    run_id: str
    step_id: str
    step_name: str
    status: str
    cached: bool
    cache_key: str | None
    original_step_run_id: str | None
    started: datetime | None
    ended: datetime | None
    source: str
    code_hash: str
    parameters: dict[str, Any]
    logs_uri: str | None
    error: str | None
    attempts: int
    image: str | None
    metadata: dict[str, Any] | None = None
    """What the step logged with :func:`conveyor.log_metadata` (None when it logged nothing)."""


@dataclass(frozen=True)
class ArtifactRecord:
    """One saved artifact version."""

    id: str
    name: str
    version: int
    uri: str
    data_type: str
    materializer: str
    content_hash: str
    producer_step_run_id: str | None
    created: datetime
    metadata: dict[str, Any]
    visualizations: dict[str, Any]
    manifest: dict[str, int] | None = None
    """``{relative file name: size in bytes}`` of its files (None for artifacts saved before it was recorded)."""
    pipeline_name: str | None = None
    """The pipeline whose run made it (None for a value saved with :func:`conveyor.save_artifact`)."""
    step_id: str | None = None
    """The step call that made it (None for a saved value)."""
    removed: datetime | None = None
    """When its files were removed (``conveyor gc``, ``conveyor artifact delete``); the record stays."""


@dataclass(frozen=True)
class ComponentRecord:
    """A registered stack component."""

    id: str
    type: str
    flavor: str
    name: str
    config: dict[str, Any]
    created: datetime
    updated: datetime
    install: str | None = None
    """How to install the flavor's distribution, recorded when the component was registered."""


@dataclass(frozen=True)
class StackRecord:
    """A registered stack: one component id per component type."""

    id: str
    name: str
    components: dict[str, ComponentRecord]
    created: datetime
    updated: datetime


@dataclass(frozen=True)
class ModelRecord:
    """A model: the name its versions share, and what describes it."""

    id: str
    name: str
    description: str | None
    tags: list[str]
    license: str | None
    latest_version: int
    """The number of its newest version (0 before the first)."""
    created: datetime
    updated: datetime


@dataclass(frozen=True)
class ModelVersionRecord:
    """One numbered version of a model."""

    id: str
    model_id: str
    model_name: str
    number: int
    name: str | None
    """The version's name, when it was created by name (``Model(version="2026-q4")``)."""
    run_id: str | None
    """The run that created it."""
    created: datetime
    aliases: list[str]
    """The aliases that point at it now, sorted."""


@dataclass(frozen=True)
class ModelVersionLinkRecord:
    """A step run that produced into, or used, a model version; with one artifact, or with what it logged."""

    model_version_id: str
    model_name: str
    version_number: int
    run_id: str
    step_run_id: str | None
    role: str
    """``produced`` (the step ran for this version) or ``consumed`` (the step loaded an artifact of it)."""
    artifact_id: str | None
    """The artifact this link is about; None for the link of the step run itself."""
    name: str | None
    """The artifact's name (``produced``) or the input that loaded it (``consumed``)."""
    metadata: dict[str, Any]
    """What the step logged (on the link of the step run itself)."""
    created: datetime


@dataclass(frozen=True)
class ModelAliasEventRecord:
    """One move of an alias: at what time, by whom, from which version to which."""

    model_name: str
    alias: str
    from_version: int | None
    """The version it pointed at before (None: the alias is new)."""
    to_version: int | None
    """The version it points at after (None: the alias was removed)."""
    moved_by: str
    created: datetime


class ModelLinkRole:
    """How a step run is linked to a model version."""

    PRODUCED = "produced"
    CONSUMED = "consumed"


@dataclass(frozen=True)
class HookInvocationRecord:
    """One run of a hook: what it was for, how it ended, how long it took.

    ``run_id`` is None for a run that failed before it was created (a bad
    config); ``step_id`` is None for the pipeline's own hooks.
    """

    id: str
    run_id: str | None
    pipeline_name: str
    step_id: str | None
    event: str
    position: int
    hook: str
    status: str
    started: datetime
    ended: datetime | None
    error: str | None

    @property
    def duration(self) -> float | None:
        """Seconds the hook ran, once it ended."""
        return None if self.ended is None else (self.ended - self.started).total_seconds()


class RunStatus:
    """Statuses of runs and step runs."""

    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    STOPPED = "stopped"
    CACHED = "cached"
    SKIPPED = "skipped"

    FINISHED = frozenset({COMPLETED, FAILED, STOPPED, CACHED, SKIPPED})
    SUCCEEDED = frozenset({COMPLETED, CACHED})
