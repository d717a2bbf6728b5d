"""Compiling a deployment into the shape of a Prefect flow: a pure function of the IR.

:func:`compile_flow` checks everything Prefect cannot honour before anything
runs (a cron expression Prefect does not parse, a schedule end, settings of
the ``prefect`` namespace) and returns a :class:`FlowSpec`, plain data that
the flow driver and the deployment both follow.
"""

from __future__ import annotations

from datetime import timezone
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict

from conveyor.exceptions import CapabilityError, ConfigError

if TYPE_CHECKING:
    from conveyor.ir import Deployment, Schedule, StepIR
    from conveyor_prefect._flavor import PrefectOrchestratorConfig

FLOW_ENTRYPOINT = "conveyor_prefect._flow.run_deployment"
"""Module path of the flow every pipeline runs, under any name."""


def flow_entrypoint(pipeline_name: str) -> str:
    """Module path of a pipeline's flow in its Prefect deployment: the same flow, named after the pipeline."""
    from conveyor_prefect._named import flow_attribute

    return f"conveyor_prefect._named.{flow_attribute(pipeline_name)}"


RUN_TAG_PREFIX = "conveyor-run:"
"""Flow runs carry the tag ``conveyor-run:<conveyor run id>``."""

# Characters Prefect refuses in flow and deployment names.
_BANNED = "/%&><"
_STEP_SETTINGS = {"tags"}


class _Spec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TaskSpec(_Spec):
    """One Prefect task: a step of the pipeline.

    ``mode`` is where the task runs the step: ``in_process``, ``subprocess``
    (a ``python -m conveyor.runtime run-step`` process), ``container`` (that
    command in the pipeline's image) or ``step_operator``.
    """

    step_id: str
    name: str
    upstream: tuple[str, ...] = ()
    retries: int = 0
    retry_delay_seconds: float = 0.0
    timeout_seconds: float | None = None
    tags: tuple[str, ...] = ()
    mode: Literal["in_process", "subprocess", "container", "step_operator"] = "in_process"


class FlowSpec(_Spec):
    """A pipeline as Prefect sees it: the flow, its tasks, and its deployment when scheduled."""

    flow_name: str
    deployment_id: str
    tags: tuple[str, ...]
    max_workers: int
    tasks: tuple[TaskSpec, ...]
    schedule: dict[str, Any] | None = None
    """``{"cron": ...}`` or ``{"interval": seconds}``, with ``anchor_date`` when the schedule has a start."""
    deployment_name: str
    work_pool: str
    work_pool_type: str
    entrypoint: str = FLOW_ENTRYPOINT


def validate_cron(expression: str) -> None:
    """Check a cron expression the way the Prefect server will.

    Raises:
        ConfigError: Prefect does not accept it.
    """
    from prefect.client.schemas.schedules import CronSchedule
    from pydantic import ValidationError

    try:
        CronSchedule(cron=expression)
    except ValidationError:
        raise ConfigError(
            f"schedule cron {expression!r} is not a cron expression Prefect accepts",
            "use five fields: minute hour day-of-month month day-of-week, e.g. '0 * * * *'",
        ) from None


def _schedule(schedule: Schedule) -> dict[str, Any]:
    if schedule.end_date is not None:
        raise CapabilityError(
            "the prefect orchestrator cannot end a schedule (end_date)",
            "remove end_date, and pause or delete the Prefect deployment when it should stop",
        )
    if schedule.catchup:
        raise CapabilityError(
            "the prefect orchestrator does not run missed schedule slots (catchup=True)",
            "set catchup=False, or start past runs by hand: prefect deployment run",
        )
    out: dict[str, Any]
    if schedule.cron is not None:
        validate_cron(schedule.cron)
        out = {"cron": schedule.cron}
    else:
        out = {"interval": schedule.interval_seconds}
    if schedule.start_date is not None:
        start = schedule.start_date
        if start.tzinfo is None:
            start = start.replace(tzinfo=timezone.utc)
        out["anchor_date"] = start.isoformat()
    return out


def _task_mode(step: StepIR, step_mode: str) -> str:
    s = step.settings
    if s.step_operator is not None:
        return "step_operator"
    # A thread can be neither stopped at a timeout nor given its own environment.
    if step_mode == "in_process" and (s.timeout is not None or s.environment):
        return "subprocess"
    return step_mode


def _task_tags(step: StepIR) -> tuple[str, ...]:
    extra = step.settings.extra.get("prefect") or {}
    unknown = set(extra) - _STEP_SETTINGS
    if unknown:
        raise ConfigError(
            f"step {step.id!r}: unknown prefect setting {sorted(unknown)[0]!r}",
            f"prefect step settings are: {', '.join(sorted(_STEP_SETTINGS))}",
        )
    tags = extra.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise ConfigError(f"step {step.id!r}: prefect setting 'tags' must be a list of strings")
    return tuple(tags)


def literal_run_name(name: str) -> str:
    """The run name template Prefect turns back into ``name`` exactly.

    Prefect takes a task's or flow's run name as a ``str.format`` template of
    the run's parameters, so a name with ``{`` or ``}`` would pick up a
    parameter's value, or fail the run; doubled braces are read as themselves.
    """
    return name.replace("{", "{{").replace("}", "}}")


def _check_name(what: str, name: str) -> None:
    bad = [c for c in name if c in _BANNED]
    if bad:
        raise ConfigError(
            f"{what} {name!r} contains {bad[0]!r}, which Prefect does not allow in names",
            f"rename it without any of {_BANNED}",
        )


def compile_flow(deployment: Deployment, config: PrefectOrchestratorConfig) -> FlowSpec:
    """The Prefect flow (and deployment) a conveyor deployment becomes.

    Deterministic: the same deployment and config give the same spec.

    Raises:
        ConfigError: a cron expression Prefect rejects, a bad ``prefect`` step setting, a bad name.
        CapabilityError: a schedule Prefect cannot honour (end_date, catchup).
    """
    pipeline = deployment.pipeline
    _check_name("pipeline name", pipeline.name)
    deployment_name = config.deployment_name or pipeline.name
    _check_name("deployment name", deployment_name)
    tasks = tuple(
        TaskSpec(
            step_id=step.id,
            name=step.name,
            upstream=step.upstream(),
            retries=step.settings.retries,
            retry_delay_seconds=step.settings.retry_delay,
            timeout_seconds=step.settings.timeout,
            tags=_task_tags(step),
            mode=_task_mode(step, config.step_mode),  # type: ignore[arg-type]
        )
        for step in pipeline.steps
    )
    tags = ("conveyor", f"conveyor-pipeline:{pipeline.name}", *sorted(set(config.tags)))
    return FlowSpec(
        flow_name=pipeline.name,
        deployment_id=deployment.id,
        tags=tags,
        max_workers=config.max_workers or max(1, len(tasks)),
        tasks=tasks,
        schedule=_schedule(deployment.schedule) if deployment.schedule is not None else None,
        deployment_name=deployment_name,
        work_pool=config.work_pool,
        work_pool_type=config.work_pool_type,
        entrypoint=flow_entrypoint(pipeline.name),
    )
