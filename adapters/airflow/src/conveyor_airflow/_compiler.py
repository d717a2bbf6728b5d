"""Compile a deployment into the text of an Airflow DAG file: a pure function, no Airflow needed.

The file holds only the deployment id; each task runs
``python -m conveyor.runtime run-step`` for its step, which loads the
deployment from the metadata store, and a teardown task runs
``python -m conveyor.runtime finish-run`` after them whatever their state,
so a DAG run however started settles its conveyor run. Settings Airflow
cannot honour fail here, at compile time.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from conveyor.exceptions import CapabilityError, ConfigError
from conveyor.ir import ResourceSettings
from conveyor.runtime import finish_command, step_command
from conveyor.stack import step_settings as merged_step_settings
from conveyor_airflow._literal import Code, call, py_literal
from conveyor_airflow._names import dag_id_for, task_id_for
from conveyor_airflow._settings import (
    KUBERNETES_ONLY,
    NAMESPACE,
    PipelineAirflowSettings,
    StepAirflowSettings,
    pipeline_settings,
)

if TYPE_CHECKING:
    from conveyor.ir import Deployment, Schedule, StepIR
    from conveyor_airflow._flavor import AirflowOrchestratorConfig

TEMPLATE = "dag.py.jinja"
FINISH_TASK = "conveyor-finish-run"
"""The task id of the DAG's teardown task, which settles the conveyor run (no step may map to it)."""
FINISH_RETRIES = 2
"""Tries of the teardown task beyond the first: settling is idempotent, and a store can be briefly unreachable."""
FINISH_RETRY_DELAY = 15.0
"""Seconds between the teardown task's tries."""

_OPERATORS = {
    "python": ("BashOperator", "from airflow.providers.standard.operators.bash import BashOperator"),
    "docker": ("DockerOperator", "from airflow.providers.docker.operators.docker import DockerOperator"),
    "kubernetes_pod": (
        "KubernetesPodOperator",
        "from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator",
    ),
}
_CRON_PRESETS = frozenset(
    {
        "@once",
        "@continuous",
        "@hourly",
        "@daily",
        "@weekly",
        "@monthly",
        "@quarterly",
        "@yearly",
        "@annually",
        "@midnight",
    }
)
_CRON_FIELD = re.compile(r"^[0-9A-Za-z*/,?#-]+$")
_ENV_NAME = re.compile(r"^[^=\x00]+$")


@dataclass(frozen=True)
class CompiledDag:
    """A compiled DAG file."""

    dag_id: str
    pipeline: str
    deployment_id: str
    source: str

    @property
    def filename(self) -> str:
        """The file name Airflow finds it under: ``<dag_id>.py``."""
        return f"{self.dag_id}.py"


@dataclass(frozen=True)
class TaskPlan:
    """One step as one Airflow task."""

    step: StepIR
    task_id: str
    mode: str
    upstream: tuple[str, ...]
    settings: StepAirflowSettings


@dataclass(frozen=True)
class DagPlan:
    """What the DAG will be, checked against what Airflow can do."""

    dag_id: str
    settings: PipelineAirflowSettings
    tasks: tuple[TaskPlan, ...] = field(default_factory=tuple)
    default_mode: str = "python"
    """The orchestrator's operator mode."""

    @property
    def modes(self) -> frozenset[str]:
        """The operator modes the tasks use."""
        return frozenset(t.mode for t in self.tasks)

    @property
    def finish_mode(self) -> str:
        """The operator mode of the teardown task: the pipeline's (its ``operator`` setting, else the
        orchestrator's) when a step runs that way, else the first step's, so it needs nothing the steps do not."""
        wanted = self.settings.operator or self.default_mode
        return wanted if wanted in self.modes or not self.tasks else self.tasks[0].mode


# -- planning: every check that needs no image ------------------------------------------
def plan_dag(deployment: Deployment, config: AirflowOrchestratorConfig) -> DagPlan:
    """Check a deployment against Airflow and the orchestrator config; map names to keys.

    Raises:
        ConfigError: a bad ``airflow`` setting, or names that collide as Airflow keys.
        CapabilityError: a step asks for what its operator cannot do.
    """
    pipeline = deployment.pipeline
    dag_settings = pipeline_settings(pipeline.settings.extra, pipeline.name)
    dag_id = dag_settings.dag_id or dag_id_for(pipeline.name)
    if deployment.schedule is not None:
        _check_schedule(deployment.schedule)
    task_ids: dict[str, str] = {}
    tasks: list[TaskPlan] = []
    for step in pipeline.steps:
        task_id = task_id_for(step.id)
        if task_id == FINISH_TASK:
            raise ConfigError(
                f"step {step.id!r} of pipeline {pipeline.name!r} is task {task_id!r} in Airflow, "
                "the task that settles each DAG run's conveyor run",
                "rename the step (@step(name=...))",
            )
        if task_id in task_ids:
            raise ConfigError(
                f"steps {task_ids[task_id]!r} and {step.id!r} of pipeline {pipeline.name!r} "
                f"are both task {task_id!r} in Airflow",
                "rename one of the steps (@step(name=...))",
            )
        task_ids[task_id] = step.id
        settings = merged_step_settings(
            StepAirflowSettings, NAMESPACE, pipeline.settings.extra, step.settings.extra, where=f"step {step.id!r}"
        )
        mode = settings.operator or config.operator
        _check_step(step, mode, settings, config)
        upstream = tuple(task_id_for(u) for u in step.upstream())
        tasks.append(TaskPlan(step=step, task_id=task_id, mode=mode, upstream=upstream, settings=settings))
    return DagPlan(dag_id=dag_id, settings=dag_settings, tasks=tuple(tasks), default_mode=config.operator)


def _check_schedule(schedule: Schedule) -> None:
    if schedule.cron is not None:
        cron = schedule.cron.strip()
        fields = cron.split()
        if cron not in _CRON_PRESETS and not (len(fields) in (5, 6) and all(_CRON_FIELD.match(f) for f in fields)):
            raise ConfigError(
                f"schedule cron {schedule.cron!r} is not a cron expression Airflow reads",
                "give 5 fields (minute hour day month weekday) or a preset such as @daily",
            )
    if schedule.catchup and schedule.start_date is None:
        raise ConfigError("a schedule with catchup=True needs a start_date on Airflow", "add start_date=...")


def _check_step(step: StepIR, mode: str, settings: StepAirflowSettings, config: AirflowOrchestratorConfig) -> None:
    s = step.settings
    where = f"step {step.id!r}"
    if s.step_operator is not None:
        raise CapabilityError(
            f"{where} asks for step operator {s.step_operator!r}, which Airflow tasks cannot call",
            'run it in a container instead: settings={"airflow": {"operator": "docker"}} (or "kubernetes_pod")',
        )
    _no_nul(step.id, f"the id of {where}")
    for name, value in s.environment.items():
        if not _ENV_NAME.match(name):
            raise ConfigError(f"{where} sets environment variable {name!r}, which is not a valid name")
        _no_nul(value, f"environment variable {name!r} of {where}")
    res = s.resources
    if mode == "python" and not res.is_empty():
        what = "GPUs" if (res.gpu_count or res.gpu_type) else "cpu/memory"
        raise CapabilityError(
            f"{where} asks for {what}, which Airflow's python operator mode cannot honour",
            'run it in a container: settings={"airflow": {"operator": "kubernetes_pod"}} (or "docker")',
        )
    if mode == "docker" and res.gpu_type:
        raise CapabilityError(
            f"{where} asks for GPU type {res.gpu_type!r}, which the docker operator cannot pick",
            'use operator "kubernetes_pod" with gpu_type_label, or drop gpu_type',
        )
    if mode == "kubernetes_pod" and res.gpu_type and not config.gpu_type_label:
        raise CapabilityError(
            f"{where} asks for GPU type {res.gpu_type!r}, but the orchestrator has no gpu_type_label",
            "set gpu_type_label to the node label of GPU types (e.g. cloud.google.com/gke-accelerator)",
        )
    if mode != "kubernetes_pod":
        for name in KUBERNETES_ONLY:
            if getattr(settings, name) is not None:
                raise ConfigError(
                    f"{where} sets airflow setting {name!r}, which only the kubernetes_pod operator has",
                    'add "operator": "kubernetes_pod" to its airflow settings',
                )


def _no_nul(value: str, what: str) -> None:
    if "\x00" in value:
        raise ConfigError(f"{what} contains a NUL character, which no process can be given")


# -- rendering ------------------------------------------------------------------------
@dataclass(frozen=True)
class Machine:
    """Where the tasks run: the interpreter, metadata store, code folder and docker mounts the DAG file names."""

    python: str
    store_url: str | None
    source_root: str | None
    """The code folder of ``python`` mode (containers bring their code; they get only the config's)."""
    mounts: tuple[str, ...]


def machine(
    config: AirflowOrchestratorConfig,
    python: str | None,
    store_url: str | None,
    source_root: str | None,
    mounts: list[str] | tuple[str, ...],
) -> Machine:
    """The config's values, else the caller's.

    Raises:
        ConfigError: a value with a NUL character, which no process can be given.
    """
    found = Machine(
        python=config.python or python or "python",
        store_url=config.store_url or store_url,
        source_root=config.source_root or source_root,
        mounts=tuple(dict.fromkeys([*config.docker_mounts, *mounts])),
    )
    for value, what in ((found.python, "python"), (found.store_url, "store_url"), (found.source_root, "source_root")):
        if value is not None:
            _no_nul(value, f"the orchestrator's {what}")
    for item in found.mounts:
        _no_nul(item, "a docker mount")
    return found


def _imports(plan: DagPlan, where: Machine) -> list[str]:
    """The DAG file's imports: Airflow's, and each operator's that a task uses."""
    imports = ["from airflow.sdk import DAG, literal"]
    imports += [_OPERATORS[m][1] for m in ("python", "docker", "kubernetes_pod") if m in plan.modes]
    if "docker" in plan.modes:
        if where.mounts:
            imports.append("from docker.types import Mount")
        if any(t.mode == "docker" and t.step.settings.resources.gpu_count for t in plan.tasks):
            imports.append("from docker.types import DeviceRequest")
    if "kubernetes_pod" in plan.modes:
        imports.append("from kubernetes.client import models as k8s")
    return imports


def _python_env(where: Machine) -> dict[str, Any]:
    """``PYTHON_ENV``: what every ``python`` mode task's shell gets besides the step's own environment."""
    env: dict[str, Any] = {"CONVEYOR_PYTHON": where.python, "CONVEYOR_DEPLOYMENT": Code("CONVEYOR_DEPLOYMENT")}
    if where.store_url is not None:
        env["CONVEYOR_STORE_URL"] = where.store_url
    if where.source_root is not None:
        env["CONVEYOR_SOURCE_ROOT"] = where.source_root
    return env


RUN_KEY = "airflow:{{ dag.dag_id }}:{{ run_id }}"
"""The conveyor run key of an Airflow DAG run (Airflow fills in the template): its tasks share one run."""
RUN_ID = "{{ run_id }}"
RUN_CONF = "{{ dag_run.conf | tojson }}"
"""The config a DAG run was triggered with (``airflow dags trigger --conf``, the UI's "trigger with config"):
the pipeline parameters it overrides, checked by the step command. Jinja's ``tojson`` escapes ``'``, so the
value also stays one word inside single quotes in a shell command."""


_SHELL_RUN_KEY = "airflow:$AIRFLOW_CTX_DAG_ID:$AIRFLOW_CTX_DAG_RUN_ID"


def run_step_shell(parameters: bool = False) -> str:
    """``RUN_STEP``: the step command for a python mode task's shell.

    Every conveyor value is a variable of the task's environment (``env``):
    the shell expands them inside double quotes and reads nothing else as
    code. A pipeline with parameters also gets the DAG run's config
    (:data:`RUN_CONF`), rendered by Airflow inside single quotes.
    """
    return _shell(step_command("$CONVEYOR_DEPLOYMENT", "$CONVEYOR_STEP", **_shell_flags(parameters)))


def finish_run_shell(parameters: bool = False) -> str:
    """``FINISH_RUN``: the command of a python mode teardown task's shell: ``finish-run`` of the DAG run's
    conveyor run, quoted as :func:`run_step_shell` quotes the step command."""
    return _shell(finish_command("$CONVEYOR_DEPLOYMENT", **_shell_flags(parameters)))


def _shell_flags(parameters: bool) -> dict[str, Any]:
    """The flags both shell commands take from the task's environment (and the DAG run's config)."""
    return {
        "run_key": _SHELL_RUN_KEY,
        "params_json": RUN_CONF if parameters else None,
        "orchestrator_run_id": "$AIRFLOW_CTX_DAG_RUN_ID",
        "python": "$CONVEYOR_PYTHON",
    }


def _shell(argv: list[str]) -> str:
    return "exec " + " ".join(f'"{a}"' if "$" in a else f"'{a}'" if a == RUN_CONF else shlex.quote(a) for a in argv)


def container_argv(
    config: AirflowOrchestratorConfig, deployment_id: str, step_id: str, image: str, parameters: bool = False
) -> list[str]:
    """The step command a container task runs (Airflow fills in its run id, and its config for a pipeline with
    parameters)."""
    return step_command(
        deployment_id,
        step_id,
        run_key=RUN_KEY,
        image=image,
        params_json=RUN_CONF if parameters else None,
        orchestrator_run_id=RUN_ID,
        python=config.container_python,
    )


def finish_container_argv(config: AirflowOrchestratorConfig, deployment_id: str, parameters: bool = False) -> list[str]:
    """The ``finish-run`` command a container teardown task runs (Airflow fills in its run id and config)."""
    return finish_command(
        deployment_id,
        run_key=RUN_KEY,
        params_json=RUN_CONF if parameters else None,
        orchestrator_run_id=RUN_ID,
        python=config.container_python,
    )


def _argv_source(argv: list[str]) -> Code:
    # Airflow renders templated fields with Jinja: only the run templates above are meant for it.
    templates = (RUN_KEY, RUN_ID, RUN_CONF)
    return Code("[" + ", ".join(py_literal(a) if a in templates else str(call("literal", a)) for a in argv) + "]")


def _container_env(config: AirflowOrchestratorConfig, where: Machine) -> dict[str, str]:
    """``CONTAINER_ENV``: what every container task gets besides the step's own environment."""
    env: dict[str, str] = {}
    if where.store_url is not None:
        env["CONVEYOR_STORE_URL"] = where.store_url
    if config.source_root is not None:
        env["CONVEYOR_SOURCE_ROOT"] = config.source_root
    return env


def _docker_mounts(where: Machine) -> Code:
    """``MOUNTS``: the bind mounts of ``docker`` mode tasks."""
    sources = []
    for item in where.mounts:
        host, target, *rest = item.split(":")
        sources.append(str(call("Mount", source=host, target=target, type="bind", read_only=rest == ["ro"])))
    return Code("[" + ", ".join(sources) + "]")


def _edges(plan: DagPlan) -> list[tuple[Code, Code]]:
    """``upstream >> task`` for every task that waits for others."""
    edges = []
    for t in plan.tasks:
        if not t.upstream:
            continue
        ups = [f"tasks[{py_literal(u)}]" for u in t.upstream]
        left = ups[0] if len(ups) == 1 else "[" + ", ".join(ups) + "]"
        edges.append((Code(left), Code(f"tasks[{py_literal(t.task_id)}]")))
    return edges


def compile_dag(
    deployment: Deployment,
    config: AirflowOrchestratorConfig,
    *,
    python: str | None = None,
    store_url: str | None = None,
    source_root: str | None = None,
    mounts: list[str] | tuple[str, ...] = (),
    plan: DagPlan | None = None,
) -> CompiledDag:
    """Compile a deployment into an Airflow DAG file; the same input gives the same bytes.

    Args:
        deployment: what to compile (stored in the metadata store by the caller).
        config: the orchestrator's config.
        python, store_url: used where ``config`` leaves them unset.
        source_root: used where ``config`` leaves it unset, for ``python`` mode
            only (container images bring their code).
        mounts: ``docker`` mode bind mounts (``HOST:CONTAINER[:ro]``) besides
            the config's, e.g. the folders of a SQLite store and a local artifact store.
        plan: the result of :func:`plan_dag` for this deployment and config, if known.

    Raises:
        ConfigError, CapabilityError: see :func:`plan_dag`; a container mode without an image.
    """
    if plan is None:
        plan = plan_dag(deployment, config)
    deployment_id = deployment.id  # a hash of the whole deployment: computed once
    where = machine(config, python, store_url, source_root, mounts)
    container = bool(plan.modes & {"docker", "kubernetes_pod"})
    docker_mounts = "docker" in plan.modes and bool(where.mounts)
    on_server = where.store_url is not None and where.store_url.startswith(("http://", "https://"))
    tasks = [_task(t, deployment, deployment_id, config, bool(where.mounts), on_server) for t in plan.tasks]
    source = _template().render(
        imports=[Code(i) for i in _imports(plan, where)],
        pipeline=deployment.pipeline.name,
        deployment_id=deployment_id,
        python_env=_python_env(where) if "python" in plan.modes else None,
        run_step=run_step_shell(bool(deployment.pipeline.parameters)) if "python" in plan.modes else None,
        finish_run=finish_run_shell(bool(deployment.pipeline.parameters)) if plan.finish_mode == "python" else None,
        container_env=_container_env(config, where) if container else None,
        worker_credential=on_server and "docker" in plan.modes,
        docker_mounts=_docker_mounts(where) if docker_mounts else None,
        dag_args=[(Code(k), v) for k, v in _dag_args(plan, deployment, deployment_id, config)],
        tasks=tasks,
        edges=_edges(plan),
        finish=_finish_task(plan, deployment, deployment_id, config, bool(where.mounts), on_server)
        if plan.tasks
        else None,
    )
    return CompiledDag(
        dag_id=plan.dag_id, pipeline=deployment.pipeline.name, deployment_id=deployment_id, source=source
    )


def _dag_args(
    plan: DagPlan, deployment: Deployment, deployment_id: str, config: AirflowOrchestratorConfig
) -> list[tuple[str, Any]]:
    s = plan.settings
    name = deployment.pipeline.name
    args: list[tuple[str, Any]] = [("dag_id", plan.dag_id)]
    if name != plan.dag_id:
        args.append(("dag_display_name", name))
    if s.description is not None:
        args.append(("description", s.description))
    args.append(("doc_md", f"conveyor pipeline, deployment `{deployment_id}`"))
    schedule = deployment.schedule
    if schedule is None:
        args += [("schedule", None), ("catchup", False)]
    else:
        if schedule.cron is not None:
            args.append(("schedule", schedule.cron.strip()))
        else:
            args.append(("schedule", _timedelta(schedule.interval_seconds)))
        if schedule.start_date is not None:
            args.append(("start_date", _datetime(schedule.start_date)))
        if schedule.end_date is not None:
            args.append(("end_date", _datetime(schedule.end_date)))
        args.append(("catchup", schedule.catchup))
    if deployment.pipeline.parameters:
        # The trigger form of Airflow's UI offers these; a run's config overrides them (see RUN_CONF).
        args.append(("params", dict(deployment.pipeline.parameters)))
    tags = list(dict.fromkeys([*config.tags, *(s.tags or [])]))
    for tag in tags:
        if not tag or len(tag) > 100:
            raise ConfigError(f"Airflow tag {tag!r} must have 1 to 100 characters")
    args.append(("tags", tags))
    for key in ("max_active_runs", "max_active_tasks", "is_paused_upon_creation"):
        value = getattr(s, key)
        if value is not None:
            args.append((key, value))
    if s.dagrun_timeout is not None:
        args.append(("dagrun_timeout", _timedelta(s.dagrun_timeout)))
    return args


def _task(
    t: TaskPlan,
    deployment: Deployment,
    deployment_id: str,
    config: AirflowOrchestratorConfig,
    mounts: bool,
    on_server: bool = False,
) -> dict[str, Any]:
    step, s = t.step, t.step.settings
    args: list[tuple[str, Any]] = [("task_id", t.task_id)]
    if step.id != t.task_id:
        args.append(("task_display_name", step.id))
    if t.mode == "python":
        env = _dict_source(s.environment, "PYTHON_ENV", {"CONVEYOR_STEP": step.id})
        args += [("bash_command", Code("RUN_STEP")), ("env", Code(f"literal({env})")), ("append_env", True)]
    else:
        image = deployment.image_for(step.id) or config.image
        if image is None:
            raise ConfigError(
                f"step {step.id!r} runs in a {t.mode} container, but the deployment has no image",
                "add an image builder to the stack, or set the orchestrator's image option",
            )
        _no_nul(image, f"the image of step {step.id!r}")
        command = container_argv(config, deployment_id, step.id, image, bool(deployment.pipeline.parameters))
        env_code = Code(f"literal({_dict_source(s.environment, 'CONTAINER_ENV', {})})")
        args.append(("image", call("literal", image)))
        if t.mode == "docker":
            args += _docker_args(s.resources, config, command, env_code, mounts)
            if on_server:
                # The worker's own server credential (a runner key), read when the task runs: never in this file.
                args.append(("private_environment", Code("WORKER_CREDENTIAL")))
        else:
            args += _kubernetes_args(s.resources, t.settings, config, command, env_code)
    args.append(("do_xcom_push", False))
    args.append(("retries", s.retries))
    if s.retries:
        args.append(("retry_delay", _timedelta(s.retry_delay)))
    if s.timeout is not None:
        args.append(("execution_timeout", _timedelta(s.timeout)))
    a = t.settings
    for key in (
        "pool",
        "pool_slots",
        "queue",
        "priority_weight",
        "weight_rule",
        "owner",
        "executor",
        "run_as_user",
        "max_active_tis_per_dag",
        "max_active_tis_per_dagrun",
        "retry_exponential_backoff",
        "doc_md",
    ):
        value = getattr(a, key)
        if value is not None:
            args.append((key, value))
    if a.max_retry_delay is not None:
        args.append(("max_retry_delay", _timedelta(a.max_retry_delay)))
    return {"task_id": t.task_id, "operator": Code(_OPERATORS[t.mode][0]), "args": [(Code(k), v) for k, v in args]}


def _finish_task(
    plan: DagPlan,
    deployment: Deployment,
    deployment_id: str,
    config: AirflowOrchestratorConfig,
    mounts: bool,
    on_server: bool,
) -> dict[str, Any]:
    """The teardown task: ``finish-run`` of the DAG run's conveyor run, after every step task however it ended.

    It runs where the steps run (the DAG's interpreter, or the pipeline's image), and it is what settles a DAG
    run started from Airflow itself (its UI, CLI or schedule): steps still ``running`` (their process was
    killed) fail, steps never started are skipped, and the failure hooks due run, once.
    """
    mode, a = plan.finish_mode, plan.settings
    parameters = bool(deployment.pipeline.parameters)
    args: list[tuple[str, Any]] = [("task_id", FINISH_TASK)]
    if mode == "python":
        args += [("bash_command", Code("FINISH_RUN")), ("env", Code("literal({**PYTHON_ENV})")), ("append_env", True)]
    else:
        steps = deployment.pipeline.steps
        image = deployment.images.get("") or (deployment.image_for(steps[0].id) if steps else None) or config.image
        if image is None:
            raise ConfigError(
                f"pipeline {deployment.pipeline.name!r} runs in {mode} containers, but the deployment has no image",
                "add an image builder to the stack, or set the orchestrator's image option",
            )
        _no_nul(image, f"the image of pipeline {deployment.pipeline.name!r}")
        command = finish_container_argv(config, deployment_id, parameters)
        env_code = Code("literal({**CONTAINER_ENV})")
        args.append(("image", call("literal", image)))
        if mode == "docker":
            args += _docker_args(ResourceSettings(), config, command, env_code, mounts)
            if on_server:  # settling the run needs the worker's server credential, as the step containers do
                args.append(("private_environment", Code("WORKER_CREDENTIAL")))
        else:
            args += _kubernetes_args(ResourceSettings(), a, config, command, env_code)
    args += [
        ("do_xcom_push", False),
        ("retries", FINISH_RETRIES),
        ("retry_delay", _timedelta(FINISH_RETRY_DELAY)),
    ]
    # Where the pipeline's tasks run (a queue, an executor, a user), the teardown task runs too.
    for key in ("queue", "owner", "executor", "run_as_user"):
        value = getattr(a, key)
        if value is not None:
            args.append((key, value))
    # Every step task, not only the last ones: a task whose upstream failed is done while its siblings still run.
    upstream = Code("[" + ", ".join(f"tasks[{py_literal(t.task_id)}]" for t in plan.tasks) + "]")
    return {
        "task_id": FINISH_TASK,
        "operator": Code(_OPERATORS[mode][0]),
        "args": [(Code(k), v) for k, v in args],
        "upstream": upstream,
    }


def _dict_source(first: dict[str, str], splat: str, last: dict[str, str]) -> str:
    """Source of ``{**first, **splat, **last}`` with literal keys and values (later keys win)."""
    items = [f"{py_literal(k)}: {py_literal(v)}" for k, v in first.items()]
    items.append(f"**{splat}")
    items += [f"{py_literal(k)}: {py_literal(v)}" for k, v in last.items()]
    return "{" + ", ".join(items) + "}"


def _docker_args(
    res: ResourceSettings, config: AirflowOrchestratorConfig, command: list[str], env: Code, mounts: bool
) -> list[tuple[str, Any]]:
    args: list[tuple[str, Any]] = [
        ("command", _argv_source(command)),
        ("environment", env),
        ("docker_url", config.docker_url),
        ("network_mode", config.network_mode),
        # With host networking the container would share this machine's hostname, and the
        # metadata store would take local runs of this machine for runs of the container.
        ("hostname", "conveyor-step"),
        ("mount_tmp_dir", False),
        ("auto_remove", "force"),
    ]
    if mounts:
        args.append(("mounts", Code("literal(MOUNTS)")))
    if res.cpu is not None:
        args.append(("cpus", float(res.cpu)))
    if res.memory is not None:
        args.append(("mem_limit", res.memory))
    if res.gpu_count:
        args.append(
            ("device_requests", Code(f"[{call('DeviceRequest', count=res.gpu_count, capabilities=[['gpu']])}]"))
        )
    return args


def _kubernetes_args(
    res: ResourceSettings, a: StepAirflowSettings, config: AirflowOrchestratorConfig, command: list[str], env: Code
) -> list[tuple[str, Any]]:
    args: list[tuple[str, Any]] = [
        ("cmds", _argv_source(command[:1])),
        ("arguments", _argv_source(command[1:])),
        ("env_vars", env),
    ]
    for key, value in (("namespace", config.namespace), ("config_file", config.kube_config_file)):
        if value is not None:
            args.append((key, call("literal", value)))
    if config.in_cluster is not None:
        args.append(("in_cluster", config.in_cluster))
    requests: dict[str, str] = {}
    limits: dict[str, str] = {}
    cpu, memory = res.cpu_quantity(), res.memory_quantity()
    if cpu is not None:
        requests["cpu"] = cpu
    if memory is not None:
        requests["memory"] = limits["memory"] = memory
    if res.gpu_count:
        limits[config.gpu_resource] = str(res.gpu_count)
    if requests or limits:
        resources = call("k8s.V1ResourceRequirements", requests=requests or None, limits=limits or None)
        args.append(("container_resources", Code(f"literal({resources})")))
    node_selector = dict(a.node_selector or {})
    if res.gpu_type and config.gpu_type_label:
        node_selector[config.gpu_type_label] = res.gpu_type
    for key, value in (("node_selector", node_selector), ("labels", a.labels), ("annotations", a.annotations)):
        if value:
            args.append((key, call("literal", value)))
    for key in ("service_account_name", "image_pull_policy"):
        value = getattr(a, key)
        if value is not None:
            args.append((key, value))
    return args


def _timedelta(seconds: float | None) -> Code:
    return call("datetime.timedelta", seconds=float(seconds or 0.0))


def _datetime(value: datetime) -> Code:
    # A date without a zone is UTC, as Airflow reads it by default.
    aware = value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)
    return call("datetime.datetime.fromisoformat", aware.astimezone(timezone.utc).isoformat())


_env: Any = None


def _template() -> Any:
    global _env
    if _env is None:
        import jinja2

        _env = jinja2.Environment(
            loader=jinja2.PackageLoader("conveyor_airflow", "templates"),
            finalize=py_literal,
            autoescape=False,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
        )
    return _env.get_template(TEMPLATE)
