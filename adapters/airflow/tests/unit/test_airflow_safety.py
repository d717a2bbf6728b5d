"""No name, parameter or setting can make a DAG file run code when Airflow parses it.

Hypothesis writes pipelines whose names, settings and paths hold quotes,
newlines, Jinja and Python; every compiled file is checked three ways: its
syntax tree calls only what the template calls and holds user values only as
string constants; executing it (with stand-ins for Airflow's classes) imports
only the template's modules; and every value arrives where it belongs,
unchanged.
"""

from __future__ import annotations

import ast
import builtins
import datetime
from typing import Any
from urllib.parse import quote

import airflow_test_pipelines as tp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conveyor.exceptions import ConfigError
from conveyor.ir import (
    ComponentIR,
    Deployment,
    PipelineIR,
    PipelineSettings,
    ResourceSettings,
    Schedule,
    StackIR,
    StepIR,
    StepSettings,
)
from conveyor.runtime import finish_command, step_command
from conveyor_airflow import AirflowOrchestratorConfig, compile_dag, dag_id_for, task_id_for
from conveyor_airflow._compiler import FINISH_TASK, RUN_CONF, finish_run_shell, run_step_shell
from conveyor_testing.strategies import hostile_text, names

ALLOWED_CALLS = {
    "DAG",
    "BashOperator",
    "DockerOperator",
    "KubernetesPodOperator",
    "literal",
    "Mount",
    "DeviceRequest",
    "datetime.timedelta",
    "datetime.datetime.fromisoformat",
    "k8s.V1ResourceRequirements",
    "finish.as_teardown",
}
ALLOWED_NAMES = {
    "DAG",
    "BashOperator",
    "DockerOperator",
    "KubernetesPodOperator",
    "literal",
    "Mount",
    "DeviceRequest",
    "datetime",
    "k8s",
    "dag",
    "tasks",
    "finish",
    "CONVEYOR_PIPELINE",
    "CONVEYOR_DEPLOYMENT",
    "RUN_STEP",
    "FINISH_RUN",
    "PYTHON_ENV",
    "CONTAINER_ENV",
    "MOUNTS",
    "annotations",
}
ALLOWED_IMPORTS = {
    "__future__",
    "datetime",
    "airflow.sdk",
    "airflow.providers.standard.operators.bash",
    "airflow.providers.docker.operators.docker",
    "airflow.providers.cncf.kubernetes.operators.pod",
    "docker.types",
    "kubernetes.client",
}

# The one step command of conveyor.runtime, as the compiler must render it.
RUN_STEP = run_step_shell()
RUN_STEP_WITH_PARAMETERS = run_step_shell(parameters=True)
FINISH_RUN = finish_run_shell()
FINISH_RUN_WITH_PARAMETERS = finish_run_shell(parameters=True)

CRONS = ("@daily", " 0 * * * * ", "*/5 1-3 * * mon#2", "0 0 1 1 ? 2030")
COMMAND_TAIL = (
    "-m",
    "conveyor.runtime",
    "run-step",
    "finish-run",
    "--deployment",
    "--step",
    "--run-key",
    "--image",
    "--orchestrator-run-id",
)

# Text of every kind, weighted towards what breaks code generators; NUL only where the compiler takes it.
text = st.one_of(hostile_text(), st.sampled_from((*tp.PAYLOADS, tp.HOSTILE_PIPELINE)))
no_nul = text.filter(lambda t: "\x00" not in t)
nonempty = no_nul.filter(bool)
# Names follow conveyor's naming rule: the IR refuses any other before a DAG is compiled.
any_name = names()
# A database URL without a password (the only kind the orchestrator takes) whose every other part is hostile.
store_urls = st.builds(
    lambda user, db, query: (
        f"postgresql+psycopg://{quote(user, safe='')}@db.example/{quote(db, safe='')}?app={quote(query, safe='')}"
    ),
    nonempty,
    nonempty,
    text,
)
env_name = st.one_of(st.from_regex(r"\A[A-Z_]{1,6}\Z"), nonempty.filter(lambda t: "=" not in t))
path = nonempty.filter(lambda t: ":" not in t)


def check_tree(source: str) -> None:
    """Only the template's calls, names and imports; every other value is a constant."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            assert ast.unparse(node.func) in ALLOWED_CALLS, ast.unparse(node.func)
        elif isinstance(node, ast.Name):
            assert node.id in ALLOWED_NAMES, node.id
        elif isinstance(node, ast.Attribute):
            assert ast.unparse(node) in {
                "datetime.timedelta",
                "datetime.datetime",
                "datetime.datetime.fromisoformat",
                "k8s.V1ResourceRequirements",
                "finish.as_teardown",
            }, ast.unparse(node)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            module = node.module if isinstance(node, ast.ImportFrom) else node.names[0].name
            assert module in ALLOWED_IMPORTS, module
        elif isinstance(
            node,
            (
                ast.Lambda,
                ast.FunctionDef,
                ast.ClassDef,
                ast.GeneratorExp,
                ast.ListComp,
                ast.DictComp,
                ast.JoinedStr,
                ast.Await,
                ast.Yield,
                ast.NamedExpr,
                ast.Global,
            ),
        ):
            raise AssertionError(f"unexpected {type(node).__name__}")


class _Recorder:
    """Stands in for an Airflow class: keeps its arguments."""

    made: list[tuple[str, dict[str, Any]]] = []

    def __init__(self, kind: str) -> None:
        self.kind = kind

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        node = _Node(kwargs)
        _Recorder.made.append((self.kind, node))
        return node


class _Node(dict):  # tasks, DAGs, mounts
    def __enter__(self) -> _Node:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def __rshift__(self, other: Any) -> Any:
        return other

    def __rrshift__(self, other: Any) -> Any:
        return self

    def as_teardown(self) -> _Node:
        self["is_teardown"] = True
        return self


class _Literal:
    def __init__(self, value: Any) -> None:
        self.value = value


class _Module:
    def __getattr__(self, name: str) -> Any:
        if name == "literal":
            return _Literal
        if name == "models":
            return self
        return _Recorder(name)


def execute(source: str) -> list[tuple[str, dict[str, Any]]]:
    """Run a DAG file with stand-ins for Airflow; returns what it built. Fails on any other import."""
    imported: list[str] = []

    def guarded_import(name: str, globals: Any = None, locals: Any = None, fromlist: Any = (), level: int = 0) -> Any:
        imported.append(name)
        if name in ("__future__", "datetime"):
            return builtins.__import__(name, globals, locals, fromlist, level)
        if name not in ALLOWED_IMPORTS:
            raise AssertionError(f"the DAG file imported {name}")
        return _Module()

    _Recorder.made = []
    namespace = {"__builtins__": {**vars(builtins), "__import__": guarded_import}, "__name__": "dag_file"}
    exec(compile(source, "dag_file", "exec"), namespace)
    assert set(imported) <= ALLOWED_IMPORTS
    return list(_Recorder.made)


def _unwrap(value: Any) -> Any:
    return value.value if isinstance(value, _Literal) else value


def _task_settings(kubernetes: bool) -> st.SearchStrategy[dict[str, Any]]:
    optional: dict[str, st.SearchStrategy[Any]] = {
        "pool": text,
        "queue": text,
        "owner": text,
        "executor": text,
        "run_as_user": text,
        "doc_md": text,
    }
    if kubernetes:
        optional |= {
            "node_selector": st.dictionaries(text, text, max_size=2),
            "labels": st.dictionaries(text, text, max_size=2),
            "annotations": st.dictionaries(text, text, max_size=2),
            "service_account_name": text,
        }
    return st.fixed_dictionaries({}, optional=optional)


@st.composite
def pipelines(draw: Any) -> tuple[Deployment, dict[str, Any]]:
    """A deployment and an orchestrator config with hostile text wherever the IR and the config take text."""
    # The teardown task's id is reserved (a step that takes it is refused; see test_airflow_compiler).
    step_ids = draw(
        st.lists(any_name.filter(lambda n: task_id_for(n) != FINISH_TASK), min_size=1, max_size=4, unique=True)
    )
    if len({task_id_for(s) for s in step_ids}) != len(step_ids):
        step_ids = step_ids[:1]
    mode = draw(st.sampled_from(["python", "docker", "kubernetes_pod"]))
    gpu_label = draw(nonempty) if mode == "kubernetes_pod" else None
    steps = []
    for i, sid in enumerate(step_ids):
        gpu_type = draw(st.none() | text) if gpu_label is not None else None
        steps.append(
            StepIR(
                id=sid,
                name=draw(any_name),
                source=f"m:{draw(text)}",
                code_hash="0",
                after=tuple(step_ids[:i][-1:]),
                settings=StepSettings(
                    retries=draw(st.integers(0, 3)),
                    environment=draw(st.dictionaries(env_name, no_nul, max_size=3)),
                    resources=ResourceSettings(gpu_type=gpu_type),
                    extra={
                        "airflow": draw(_task_settings(mode == "kubernetes_pod")),
                        "docker": {draw(text): draw(text)},
                    },
                ),
            )
        )
    dag_settings = draw(_task_settings(mode == "kubernetes_pod")) | {
        "description": draw(text),
        "tags": draw(st.lists(text.filter(lambda t: 0 < len(t) <= 100), max_size=2)),
    }
    if draw(st.booleans()):
        dag_settings["dag_id"] = draw(st.from_regex(r"\A[A-Za-z0-9_.-]{1,20}\Z"))
    pipeline = PipelineIR(
        name=draw(any_name),
        source=draw(text),
        parameters=draw(st.dictionaries(any_name, text, max_size=2)),
        steps=tuple(steps),
        settings=PipelineSettings(extra={"airflow": dag_settings}),
    )
    stack = StackIR(
        name=draw(text),
        components={
            "orchestrator": ComponentIR(type="orchestrator", flavor="airflow", name=draw(text)),
            "artifact_store": ComponentIR(
                type="artifact_store", flavor="local", name=draw(text), config={"path": draw(text)}
            ),
        },
    )
    schedule = draw(st.none() | st.builds(Schedule, cron=st.sampled_from(CRONS)))
    images = {"": draw(nonempty)} if mode != "python" else {}
    config = {
        "operator": mode,
        "python": draw(nonempty),
        "store_url": draw(store_urls),
        "source_root": draw(nonempty),
        "container_python": draw(nonempty),
        "namespace": draw(text),
        "kube_config_file": draw(text),
        "docker_url": draw(text),
        "network_mode": draw(text),
        "tags": draw(st.lists(text.filter(lambda t: 0 < len(t) <= 100), max_size=2)),
        "gpu_type_label": gpu_label,
        "docker_mounts": [f"{draw(path)}:{draw(path)}", f"{draw(path)}:{draw(path)}:ro"],
    }
    return Deployment(pipeline=pipeline, stack=stack, images=images, schedule=schedule), config


def expected_dag(dep: Deployment, config: AirflowOrchestratorConfig) -> dict[str, Any]:
    """The keyword arguments of ``DAG(...)`` as the IR and the config give them."""
    s = dep.pipeline.settings.extra["airflow"]
    name = dep.pipeline.name
    dag_id = s.get("dag_id") or dag_id_for(name)
    out: dict[str, Any] = {"dag_id": dag_id}
    if name != dag_id:
        out["dag_display_name"] = name
    out["description"] = s["description"]
    out["doc_md"] = f"conveyor pipeline, deployment `{dep.id}`"
    out["schedule"] = dep.schedule.cron.strip() if dep.schedule is not None and dep.schedule.cron else None
    out["catchup"] = False
    if dep.pipeline.parameters:
        out["params"] = dict(dep.pipeline.parameters)
    out["tags"] = list(dict.fromkeys([*config.tags, *s["tags"]]))
    return out


def expected_task(dep: Deployment, config: AirflowOrchestratorConfig, step: StepIR) -> dict[str, Any]:
    """The keyword arguments of a step's operator that carry text, as the IR and the config give them."""
    dag_settings = dep.pipeline.settings.extra["airflow"]
    own = step.settings.extra["airflow"]
    merged = {k: v for k, v in dag_settings.items() if k not in ("description", "tags", "dag_id")}
    for key, value in own.items():
        default = merged.get(key)
        merged[key] = {**default, **value} if isinstance(value, dict) and isinstance(default, dict) else value
    env = dict(step.settings.environment)
    out: dict[str, Any] = {"task_id": task_id_for(step.id)}
    if step.id != out["task_id"]:
        out["task_display_name"] = step.id
    image = dep.images.get("")
    command = step_command(
        dep.id,
        step.id,
        run_key="airflow:{{ dag.dag_id }}:{{ run_id }}",
        image=image,
        params_json=RUN_CONF if dep.pipeline.parameters else None,
        orchestrator_run_id="{{ run_id }}",
        python=config.container_python,
    )
    container_env = {**env, "CONVEYOR_STORE_URL": config.store_url, "CONVEYOR_SOURCE_ROOT": config.source_root}
    if config.operator == "python":
        out["bash_command"] = RUN_STEP_WITH_PARAMETERS if dep.pipeline.parameters else RUN_STEP
        out["env"] = {
            **env,
            "CONVEYOR_PYTHON": config.python,
            "CONVEYOR_DEPLOYMENT": dep.id,
            "CONVEYOR_STORE_URL": config.store_url,
            "CONVEYOR_SOURCE_ROOT": config.source_root,
            "CONVEYOR_STEP": step.id,
        }
        out["append_env"] = True
    elif config.operator == "docker":
        out |= _expected_docker(config, image, command, container_env)
    else:
        out |= {"image": image, "command": command, "env_vars": container_env}
        out |= {"namespace": config.namespace, "config_file": config.kube_config_file}
        selector = dict(merged.get("node_selector") or {})
        if step.settings.resources.gpu_type:
            selector[config.gpu_type_label] = step.settings.resources.gpu_type
        for key, value in (
            ("node_selector", selector),
            ("labels", merged.get("labels")),
            ("annotations", merged.get("annotations")),
        ):
            if value:
                out[key] = value
        if "service_account_name" in merged:
            out["service_account_name"] = merged["service_account_name"]
    out["do_xcom_push"] = False
    out["retries"] = step.settings.retries
    if step.settings.retries:
        out["retry_delay"] = datetime.timedelta(0)
    for key in ("pool", "queue", "owner", "executor", "run_as_user", "doc_md"):
        if key in merged:
            out[key] = merged[key]
    return out


def _expected_docker(
    config: AirflowOrchestratorConfig, image: Any, command: Any, environment: dict[str, Any]
) -> dict[str, Any]:
    """The DockerOperator arguments a step task and the teardown task share."""
    return {
        "image": image,
        "command": command,
        "environment": environment,
        "docker_url": config.docker_url,
        "network_mode": config.network_mode,
        "hostname": "conveyor-step",
        "mount_tmp_dir": False,
        "auto_remove": "force",
        "mounts": [
            {"source": host, "target": target, "type": "bind", "read_only": rest == ["ro"]}
            for host, target, *rest in (m.split(":") for m in config.docker_mounts)
        ],
    }


def expected_finish(dep: Deployment, config: AirflowOrchestratorConfig) -> dict[str, Any]:
    """The keyword arguments of the teardown task, as the IR and the config give them (one operator mode)."""
    merged = dep.pipeline.settings.extra["airflow"]
    parameters = bool(dep.pipeline.parameters)
    out: dict[str, Any] = {"task_id": FINISH_TASK}
    image = dep.images.get("")
    command = finish_command(
        dep.id,
        run_key="airflow:{{ dag.dag_id }}:{{ run_id }}",
        params_json=RUN_CONF if parameters else None,
        orchestrator_run_id="{{ run_id }}",
        python=config.container_python,
    )
    container_env = {"CONVEYOR_STORE_URL": config.store_url, "CONVEYOR_SOURCE_ROOT": config.source_root}
    if config.operator == "python":
        out["bash_command"] = FINISH_RUN_WITH_PARAMETERS if parameters else FINISH_RUN
        out["env"] = {
            "CONVEYOR_PYTHON": config.python,
            "CONVEYOR_DEPLOYMENT": dep.id,
            "CONVEYOR_STORE_URL": config.store_url,
            "CONVEYOR_SOURCE_ROOT": config.source_root,
        }
        out["append_env"] = True
    elif config.operator == "docker":
        out |= _expected_docker(config, image, command, container_env)
    else:
        out |= {"image": image, "command": command, "env_vars": container_env}
        out |= {"namespace": config.namespace, "config_file": config.kube_config_file}
        for key in ("node_selector", "labels", "annotations"):
            if merged.get(key):
                out[key] = merged[key]
        if "service_account_name" in merged:
            out["service_account_name"] = merged["service_account_name"]
    out |= {"do_xcom_push": False, "retries": 2, "retry_delay": datetime.timedelta(seconds=15)}
    for key in ("queue", "owner", "executor", "run_as_user"):
        if key in merged:
            out[key] = merged[key]
    out["is_teardown"] = True
    return out


def _plain(value: Any) -> Any:
    """A recorded argument with the stand-ins for ``literal()`` and Airflow's classes taken off."""
    if isinstance(value, _Literal):
        return _plain(value.value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


@settings(max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(pipelines())
def test_user_values_never_become_code(case: tuple[Deployment, dict[str, Any]]) -> None:
    dep, raw_config = case
    config = AirflowOrchestratorConfig(**raw_config)
    source = compile_dag(dep, config).source
    check_tree(source)
    made = execute(source)
    [dag] = [kw for kind, kw in made if kind == "DAG"]
    assert _plain(dag) == expected_dag(dep, config)
    *tasks, finish = [kw for kind, kw in made if kind.endswith("Operator")]
    assert len(tasks) == len(dep.pipeline.steps)
    got = _plain(finish)
    if "cmds" in got:
        got["command"] = got.pop("cmds") + got.pop("arguments")
    assert got == expected_finish(dep, config)
    for step, task in zip(dep.pipeline.steps, tasks, strict=True):
        got = _plain(task)
        if "cmds" in got:
            got["command"] = got.pop("cmds") + got.pop("arguments")
        assert got == expected_task(dep, config, step)


@settings(max_examples=100, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(pipelines())
def test_every_string_in_a_dag_file_is_a_value_of_the_ir_or_the_template(
    case: tuple[Deployment, dict[str, Any]],
) -> None:
    dep, raw_config = case
    config = AirflowOrchestratorConfig(**raw_config)
    source = compile_dag(dep, config).source
    known = set(_strings(dep.model_dump(mode="json"))) | set(_strings(config.model_dump(mode="json")))
    step_ids = [s.id for s in dep.pipeline.steps]
    known |= {dep.id, f"conveyor pipeline, deployment `{dep.id}`"}
    known |= {task_id_for(s) for s in step_ids} | {dag_id_for(dep.pipeline.name), FINISH_TASK}
    known |= {part for mount in config.docker_mounts for part in mount.split(":")}
    known |= {dep.schedule.cron.strip()} if dep.schedule is not None and dep.schedule.cron else set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            assert node.value in known | set(TEMPLATE_STRINGS), node.value


TEMPLATE_STRINGS = (
    RUN_STEP,
    RUN_STEP_WITH_PARAMETERS,
    FINISH_RUN,
    FINISH_RUN_WITH_PARAMETERS,
    RUN_CONF,
    "--params",
    *COMMAND_TAIL,
    "airflow:{{ dag.dag_id }}:{{ run_id }}",
    "{{ run_id }}",
    "CONVEYOR_PYTHON",
    "CONVEYOR_DEPLOYMENT",
    "CONVEYOR_STORE_URL",
    "CONVEYOR_SOURCE_ROOT",
    "CONVEYOR_STEP",
    "conveyor-step",
    "force",
    "bind",
    "gpu",
)


def _strings(data: Any) -> list[str]:
    if isinstance(data, str):
        return [data]
    if isinstance(data, dict):
        return [s for k, v in data.items() for s in (*_strings(k), *_strings(v))]
    if isinstance(data, (list, tuple)):
        return [s for v in data for s in _strings(v)]
    return []


def test_payload_names_compile_into_files_that_run_nothing(canary: Any) -> None:
    from conveyor.ir import Deployment as D

    dep = D(
        pipeline=tp.hostile.trace(),
        stack=StackIR(
            name="s",
            components={
                "orchestrator": ComponentIR(type="orchestrator", flavor="airflow", name="af"),
                "artifact_store": ComponentIR(type="artifact_store", flavor="local", name="a", config={"path": "/a"}),
            },
        ),
    )
    for mode, images in (("python", {}), ("docker", {"": tp.PAYLOADS[0]}), ("kubernetes_pod", {"": tp.PAYLOADS[2]})):
        source = compile_dag(
            dep.model_copy(update={"images": images}),
            AirflowOrchestratorConfig(
                operator=mode,
                python=tp.PAYLOADS[3],
                store_url="postgresql+psycopg://u@db/x?app=" + quote(tp.PAYLOADS[1], safe=""),
                source_root=tp.PAYLOADS[4],
            ),
        ).source
        check_tree(source)
        execute(source)
    assert not canary.exists()


def test_a_nul_in_a_step_id_is_refused_not_written() -> None:
    with pytest.raises(ValueError, match="step id"):
        StepIR(id="a\x00b", name="a", source="m:a", code_hash="0")  # the naming rule refuses it first
    # A record made without the rule still cannot put a NUL into a DAG file.
    step = StepIR.model_construct(id="a\x00b", name="a", source="m:a", code_hash="0", inputs={}, outputs={})
    step = step.model_copy(update={"after": (), "settings": StepIR.model_fields["settings"].default})
    pipe = PipelineIR.model_construct(name="p", steps=(step,), parameters={}, source=None)
    dep = Deployment.model_construct(pipeline=pipe, stack=StackIR(name="s", components={}), images={}, schedule=None)
    with pytest.raises(ConfigError, match="NUL"):
        compile_dag(dep, AirflowOrchestratorConfig())
