"""Compile a deployment into the text of a Dagster definitions file: a pure function, no Dagster needed.

The file holds only the deployment id; each op runs the command of
:func:`conveyor.runtime.step_command` for its step, which loads the
deployment from the metadata store. The run's id and parameters are markers
in that command, filled in by the op when Dagster runs it. What Dagster
cannot honour fails here, at compile time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from conveyor.exceptions import CapabilityError, ConfigError
from conveyor_dagster._literal import Code, py_literal, py_source
from conveyor_dagster._names import dagster_name
from conveyor_dagster._settings import PipelineDagsterSettings, StepDagsterSettings, pipeline_settings, step_settings

if TYPE_CHECKING:
    from conveyor.ir import Deployment, Schedule, StepIR
    from conveyor_dagster._flavor import DagsterOrchestratorConfig

TEMPLATE = "definitions.py.jinja"
RUN_KEY_PREFIX = "dagster:"
"""A Dagster run's conveyor run key is ``dagster:<Dagster run id>``."""

_CRON_PRESETS = frozenset({"@hourly", "@daily", "@weekly", "@monthly", "@yearly", "@annually", "@midnight"})
_CRON_FIELD = re.compile(r"^[0-9A-Za-z*/,?#L-]+$")
_ENV_NAME = re.compile(r"^[^=\x00]+$")
_MARKER = re.compile("\x00([0-9]+)\x00")


@dataclass(frozen=True)
class CompiledDefinitions:
    """A compiled definitions file."""

    job_name: str
    pipeline: str
    deployment_id: str
    source: str

    @property
    def filename(self) -> str:
        """The file name it is written under: ``<job_name>.py``."""
        return f"{self.job_name}.py"


@dataclass(frozen=True)
class OpPlan:
    """One step as one Dagster op."""

    step: StepIR
    op: str
    mode: str
    settings: StepDagsterSettings


@dataclass(frozen=True)
class JobPlan:
    """What the job will be, checked against what Dagster can do."""

    job_name: str
    settings: PipelineDagsterSettings
    mode: str
    """The pipeline's own mode: where the finish command runs."""
    cron: str | None = None
    ops: tuple[OpPlan, ...] = field(default_factory=tuple)

    @property
    def modes(self) -> frozenset[str]:
        """The modes the ops (and the finish command) use."""
        return frozenset({self.mode, *(o.mode for o in self.ops)})


# -- planning: every check that needs no image ------------------------------------------
def plan_job(deployment: Deployment, config: DagsterOrchestratorConfig) -> JobPlan:
    """Check a deployment against Dagster and the orchestrator config; map names to Dagster names.

    Raises:
        ConfigError: a bad ``dagster`` setting, a schedule Dagster cannot run, or names that collide.
        CapabilityError: a step asks for what Dagster cannot do.
    """
    pipeline = deployment.pipeline
    job_settings = pipeline_settings(pipeline.settings.extra, pipeline.name)
    job_name = job_settings.job_name or dagster_name(pipeline.name)
    cron = None
    if deployment.schedule is not None:
        cron = schedule_cron(deployment.schedule)
        _check_timezone(job_settings.timezone or config.timezone)
    _no_nul(job_settings.tags, "a tag of the job")
    _no_nul(config.tags, "a tag of the orchestrator")
    defaults = job_settings.model_dump(include={"mode", "pool", "retry_backoff", "retry_jitter"}, exclude_none=True)
    op_names: dict[str, str] = {}
    ops: list[OpPlan] = []
    for step in pipeline.steps:
        op = dagster_name(step.id)
        if op in op_names:
            raise ConfigError(
                f"steps {op_names[op]!r} and {step.id!r} of pipeline {pipeline.name!r} are both op {op!r} in Dagster",
                "rename one of the steps (step.with_options(id=...))",
            )
        op_names[op] = step.id
        own = step_settings(step.settings.extra, step.id)
        settings = own.model_copy(update={k: v for k, v in defaults.items() if getattr(own, k) is None})
        _check_step(step, settings)
        ops.append(OpPlan(step=step, op=op, mode=settings.mode or config.mode, settings=settings))
    if job_name in op_names:
        # Dagster keeps ops and jobs in one namespace: a pipeline and its step may not share a name.
        if job_settings.job_name is not None or f"{job_name}_job" in op_names:
            raise ConfigError(
                f"job {job_name!r} of pipeline {pipeline.name!r} has the name of its step {op_names[job_name]!r}, "
                "and Dagster names jobs and ops alike",
                'give the job another name: @pipeline(settings={"dagster": {"job_name": "..."}})',
            )
        job_name = f"{job_name}_job"
    return JobPlan(
        job_name=job_name, settings=job_settings, mode=job_settings.mode or config.mode, cron=cron, ops=tuple(ops)
    )


def schedule_cron(schedule: Schedule) -> str:
    """The cron expression Dagster runs a schedule on (intervals that divide a day or a week map to one).

    Raises:
        ConfigError: a cron expression Dagster cannot read, an interval no cron expression
            gives, or a catch-up Dagster does not do.
    """
    if schedule.catchup:
        raise ConfigError(
            "Dagster schedules do not catch up on runs missed since start_date",
            "drop catchup=True (the daemon launches the ticks it missed while it was down)",
        )
    if schedule.cron is not None:
        cron = schedule.cron.strip()
        fields = cron.split()
        if cron not in _CRON_PRESETS and not (len(fields) == 5 and all(_CRON_FIELD.match(f) for f in fields)):
            raise ConfigError(
                f"schedule cron {schedule.cron!r} is not a cron expression Dagster reads",
                "give 5 fields (minute hour day month weekday) or a preset such as @daily",
            )
        return " ".join(fields) if fields else cron
    seconds = float(schedule.interval_seconds or 0)
    minutes, rest = divmod(seconds, 60)
    cron = None
    if rest == 0:
        minutes = int(minutes)
        if minutes < 60 and 60 % minutes == 0:
            cron = "* * * * *" if minutes == 1 else f"*/{minutes} * * * *"
        elif minutes % 60 == 0 and minutes < 24 * 60 and 24 % (minutes // 60) == 0:
            hours = minutes // 60
            cron = "0 * * * *" if hours == 1 else f"0 */{hours} * * *"
        elif minutes == 24 * 60:
            cron = "0 0 * * *"
        elif minutes == 7 * 24 * 60:
            cron = "0 0 * * 0"
    if cron is None:
        raise ConfigError(
            f"a schedule every {seconds:g} s has no cron expression, and Dagster schedules run on cron",
            "use an interval that divides an hour or a day (60, 300, 3600, 21600, 86400 s) or give cron=...",
        )
    return cron


def _check_timezone(name: str) -> None:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"schedule time zone {name!r} is unknown", "give an IANA name such as UTC or Europe/Paris"
        ) from None


def _check_step(step: StepIR, settings: StepDagsterSettings) -> None:
    s = step.settings
    where = f"step {step.id!r}"
    if s.step_operator is not None:
        raise CapabilityError(
            f"{where} asks for step operator {s.step_operator!r}, which Dagster ops cannot call",
            'run it in a container instead: settings={"dagster": {"mode": "docker"}}',
        )
    if s.timeout is not None:
        raise CapabilityError(
            f"{where} asks for a timeout, which Dagster ops do not have",
            'drop it; a run-wide limit is the job tag dagster/max_runtime (settings={"dagster": {"tags": ...}})',
        )
    if not s.resources.is_empty():
        raise CapabilityError(
            f"{where} asks for cpu/memory/GPUs, which the Dagster orchestrator cannot give an op",
            "drop the resources, or use a Kubernetes-backed orchestrator (kubeflow, airflow's kubernetes_pod)",
        )
    for name, value in s.environment.items():
        if not _ENV_NAME.match(name):
            raise ConfigError(f"{where} sets environment variable {name!r}, which is not a valid name")
        _no_nul(value, f"environment variable {name!r} of {where}")
    _no_nul(settings.tags, f"a tag of {where}")


def _no_nul(value: str | dict[str, str] | None, what: str) -> None:
    """Refuse a NUL: no process can be given one, and Dagster's run storage may be PostgreSQL (tags)."""
    texts = [*value.keys(), *value.values()] if isinstance(value, dict) else [value]
    if any(text is not None and "\x00" in text for text in texts):
        raise ConfigError(f"{what} contains a NUL character, which no process can be given")


# -- rendering ------------------------------------------------------------------------
class _Markers:
    """Placeholders the commands are made with, and the markers they become in the file.

    A placeholder is a number between two NULs: no value in a command can hold a NUL
    (every one is checked), so a placeholder is never mistaken for text.
    """

    def __init__(self, parameters: dict[str, Any]) -> None:
        self.code: list[Code] = []
        self.run_id = self._add(Code("RUN_ID"))
        self.step = self._add(Code("STEP"))
        self.image = self._add(Code("IMAGE"))
        self.params = {name: self._add(Code(f"Param({py_literal(name)})")) for name in parameters}

    def _add(self, code: Code) -> str:
        self.code.append(code)
        return f"\x00{len(self.code) - 1}\x00"

    def render(self, argv: list[str]) -> list[Any]:
        """A command as the file writes it: text, markers, or tuples of both (joined at run time)."""
        out: list[Any] = []
        for arg in argv:
            pieces = _MARKER.split(arg)
            parts = [self.code[int(piece)] if i % 2 else piece for i, piece in enumerate(pieces) if i % 2 or piece]
            out.append(parts[0] if len(parts) == 1 else tuple(parts) if parts else "")
        return out


def compile_definitions(
    deployment: Deployment,
    config: DagsterOrchestratorConfig,
    *,
    python: str | None = None,
    store_url: str | None = None,
    source_root: str | None = None,
    mounts: list[str] | tuple[str, ...] = (),
    plan: JobPlan | None = None,
) -> CompiledDefinitions:
    """Compile a deployment into a Dagster definitions file; the same input gives the same bytes.

    Args:
        deployment: what to compile (stored in the metadata store by the caller).
        config: the orchestrator's config.
        python, store_url: used where ``config`` leaves them unset.
        source_root: used where ``config`` leaves it unset, for ``python`` mode
            only (container images bring their code).
        mounts: ``docker`` mode bind mounts (``HOST:CONTAINER[:ro]``) besides the
            config's, e.g. the folders of a SQLite store and a local artifact store.
        plan: the result of :func:`plan_job` for this deployment and config, if known.

    Raises:
        ConfigError, CapabilityError: see :func:`plan_job`; docker mode without an image.
    """
    from conveyor.constants import ENV_PARENT_PID, ENV_SOURCE_ROOT, ENV_STORE_URL

    if plan is None:
        plan = plan_job(deployment, config)
    pipeline = deployment.pipeline
    deployment_id = deployment.id  # a hash of the whole deployment: computed once
    python = config.python or python or "python"
    store_url = config.store_url or store_url
    python_root = config.source_root or source_root
    all_mounts = list(dict.fromkeys([*config.docker_mounts, *mounts]))
    for value, what in (
        (python, "python"),
        (store_url, "store_url"),
        (python_root, "source_root"),
        (config.container_python, "container_python"),
        *((m, "docker mount") for m in all_mounts),
    ):
        _no_nul(value, f"the orchestrator's {what}")

    markers = _Markers(pipeline.parameters)
    interpreters = {"python": python, "docker": config.container_python}
    steps = []
    for op in plan.ops:
        image = _image(deployment, config, op.step.id) if op.mode == "docker" else None
        steps.append(_step_table(op, image))
    process_env = {ENV_STORE_URL: store_url, ENV_SOURCE_ROOT: python_root}
    container_env = {ENV_STORE_URL: store_url, ENV_SOURCE_ROOT: config.source_root}
    source = _template().render(
        pipeline=pipeline.name,
        deployment_id=deployment_id,
        job_name=plan.job_name,
        job=py_source(_job_table(plan, config, deployment)),
        parameters=py_source(dict(pipeline.parameters)),
        parent_pid_variable=ENV_PARENT_PID,
        process_env=py_source({k: v for k, v in process_env.items() if v is not None}),
        container_env=py_source({k: v for k, v in container_env.items() if v is not None}),
        docker=py_source(_docker_table(config, on_server=_is_server(store_url))),
        mounts=py_source(_mount_table(all_mounts)),
        commands=py_source(_commands(deployment_id, markers, interpreters, {o.mode for o in plan.ops})),
        steps=py_source(steps),
        finish=py_source(_finish_table(deployment, plan, config, markers, interpreters[plan.mode])),
        schedule=py_source(_schedule_table(deployment, plan, config)),
    )
    return CompiledDefinitions(
        job_name=plan.job_name, pipeline=pipeline.name, deployment_id=deployment_id, source=source
    )


def _run_values(markers: _Markers) -> dict[str, Any]:
    """What every command says of the run: its key, its Dagster id and the parameters, all left open."""
    return {"run_key": RUN_KEY_PREFIX + markers.run_id, "params": markers.params, "orchestrator_run_id": markers.run_id}


def _commands(
    deployment_id: str, markers: _Markers, interpreters: dict[str, str], modes: set[str]
) -> dict[str, list[Any]]:
    """The step command of each mode the ops use; an op fills in its step (and image) as it fills in the run's."""
    from conveyor.runtime import step_command

    image = {"python": None, "docker": markers.image}
    return {
        mode: markers.render(
            step_command(
                deployment_id, markers.step, image=image[mode], python=interpreters[mode], **_run_values(markers)
            )
        )
        for mode in sorted(modes)
    }


def _finish_table(
    deployment: Deployment, plan: JobPlan, config: DagsterOrchestratorConfig, markers: _Markers, python: str
) -> dict[str, Any]:
    """The finish command and its sensors' options; it runs where the pipeline's own mode says."""
    from conveyor.runtime import finish_command

    return {
        "sensor": config.finish_sensor,
        "interval": config.sensor_interval,
        "image": _image(deployment, config, None) if plan.mode == "docker" else None,
        "command": markers.render(finish_command(deployment.id, python=python, **_run_values(markers))),
    }


def _job_table(plan: JobPlan, config: DagsterOrchestratorConfig, deployment: Deployment) -> dict[str, Any]:
    s = plan.settings
    executor: dict[str, Any] = {}
    max_concurrent = s.max_concurrent or config.max_concurrent
    if max_concurrent is not None:
        executor["max_concurrent"] = max_concurrent
    if config.start_method is not None:
        executor["start_method"] = {config.start_method: {}}
    described = f"conveyor pipeline {deployment.pipeline.name!r}, deployment {deployment.id}"
    return {
        "description": s.description if s.description is not None else described,
        "tags": {**config.tags, **(s.tags or {}), "conveyor/deployment": deployment.id},
        "executor": executor,
    }


def _is_server(store_url: str | None) -> bool:
    return store_url is not None and store_url.startswith(("http://", "https://"))


def _docker_table(config: DagsterOrchestratorConfig, *, on_server: bool = False) -> dict[str, Any]:
    from conveyor.constants import ENV_API_KEY
    from conveyor.secrets import ENV_SECRETS_KEY, ENV_SECRETS_OWNER

    table: dict[str, Any] = {
        "url": config.docker_url,
        "network_mode": config.network_mode,
        # Names only: the values come from the op's environment at run time.
        "secrets_env": [ENV_SECRETS_KEY, ENV_SECRETS_OWNER],
    }
    if on_server:
        # The op's credential for the conveyor server (a runner key), which the step trades for its run's token.
        table["server_env"] = [ENV_API_KEY]
    return table


def _mount_table(mounts: list[str]) -> list[tuple[str, str, bool]]:
    """``HOST:CONTAINER[:ro]`` as ``(host, container, read only)``."""
    table = []
    for item in mounts:
        host, target, *rest = item.split(":")
        table.append((host, target, rest == ["ro"]))
    return table


def _image(deployment: Deployment, config: DagsterOrchestratorConfig, step_id: str | None) -> str:
    image = (deployment.image_for(step_id) if step_id is not None else deployment.images.get("")) or config.image
    if image is None and step_id is None and deployment.images:
        image = next(iter(deployment.images.values()))
    if image is None:
        where = f"step {step_id!r}" if step_id is not None else "the finish command"
        raise ConfigError(
            f"{where} runs in a docker container, but the deployment has no image",
            "add an image builder and a container registry to the stack, or set the orchestrator's image option",
        )
    _no_nul(image, f"the image of {step_id!r}")
    return image


def _step_table(op: OpPlan, image: str | None) -> dict[str, Any]:
    step, s = op.step, op.settings
    retry = None
    if step.settings.retries:
        retry = {
            "max_retries": step.settings.retries,
            "delay": float(step.settings.retry_delay),
            "backoff": s.retry_backoff.upper() if s.retry_backoff else None,
            "jitter": s.retry_jitter.upper() if s.retry_jitter else None,
        }
    from conveyor.secrets import has_references

    return {
        "op": op.op,
        "step": step.id,
        "upstream": list(step.upstream()),
        "description": s.description if s.description is not None else f"conveyor step {step.id!r} ({step.name})",
        "tags": {**(s.tags or {}), "conveyor/step": step.id},
        "retry": retry,
        "pool": s.pool,
        "mode": op.mode,
        "image": image,
        "environment": dict(step.settings.environment),
        "secrets": bool(step.settings.secrets) or has_references(dict(step.settings.environment)),
    }


def _schedule_table(deployment: Deployment, plan: JobPlan, config: DagsterOrchestratorConfig) -> Any:
    schedule = deployment.schedule
    if schedule is None:
        return None
    return {
        "cron": plan.cron,
        "timezone": plan.settings.timezone or config.timezone,
        "start": _datetime(schedule.start_date),
        "end": _datetime(schedule.end_date),
        "status": "RUNNING" if config.start_schedules else "STOPPED",
    }


def _datetime(value: datetime | None) -> Code | None:
    if value is None:
        return None
    # A date without a zone is UTC.
    aware = value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)
    return Code(f"datetime.datetime.fromisoformat({aware.astimezone(timezone.utc).isoformat()!r})")


_env: Any = None


def _template() -> Any:
    global _env
    if _env is None:
        import jinja2

        _env = jinja2.Environment(
            loader=jinja2.PackageLoader("conveyor_dagster", "templates"),
            finalize=py_literal,
            autoescape=False,
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=True,
        )
    return _env.get_template(TEMPLATE)
