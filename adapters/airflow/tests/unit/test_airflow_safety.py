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
from typing import Any

import airflow_test_pipelines as tp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conveyor.exceptions import ConfigError
from conveyor.ir import ComponentIR, Deployment, PipelineIR, PipelineSettings, StackIR, StepIR, StepSettings
from conveyor_airflow import AirflowOrchestratorConfig, compile_dag

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
    "CONVEYOR_PIPELINE",
    "CONVEYOR_DEPLOYMENT",
    "RUN_STEP",
    "PYTHON_ENV",
    "STEP_COMMAND",
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

RUN_STEP = (
    'exec "$CONVEYOR_PYTHON" -m conveyor.runtime run-step --deployment="$CONVEYOR_DEPLOYMENT"'
    ' --step="$CONVEYOR_STEP" --run-key="airflow:$AIRFLOW_CTX_DAG_ID:$AIRFLOW_CTX_DAG_RUN_ID"'
    ' --orchestrator-run-id="$AIRFLOW_CTX_DAG_RUN_ID"'
)

# Text of every kind, weighted towards what breaks code generators.
tricky = st.sampled_from((*tp.PAYLOADS, tp.HOSTILE_PIPELINE, "'", '"', "\\", "\n", "{{", "}}", "${x}", "#", ""))
text = st.one_of(
    tricky,
    st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=40),
    st.lists(tricky, min_size=2, max_size=4).map("".join),
)
nonempty = text.filter(bool)


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
        _Recorder.made.append((self.kind, kwargs))
        return _Node(kwargs)


class _Node(dict):  # tasks, DAGs, mounts
    def __enter__(self) -> _Node:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def __rshift__(self, other: Any) -> Any:
        return other

    def __rrshift__(self, other: Any) -> Any:
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


@st.composite
def pipelines(draw: Any) -> tuple[Deployment, dict[str, Any]]:
    step_ids = draw(st.lists(nonempty, min_size=1, max_size=4, unique_by=lambda s: s))
    from conveyor_airflow import task_id_for

    if len({task_id_for(s) for s in step_ids}) != len(step_ids):
        step_ids = step_ids[:1]
    mode = draw(st.sampled_from(["python", "docker", "kubernetes_pod"]))
    steps = []
    for i, sid in enumerate(step_ids):
        environment = draw(st.dictionaries(st.text("ABCXYZ_", min_size=1, max_size=5), text, max_size=2))
        airflow = draw(st.fixed_dictionaries({}, optional={"pool": text, "queue": text, "owner": text, "doc_md": text}))
        if mode == "kubernetes_pod":
            airflow.update(
                draw(
                    st.fixed_dictionaries(
                        {},
                        optional={
                            "node_selector": st.dictionaries(text, text, max_size=2),
                            "labels": st.dictionaries(text, text, max_size=2),
                        },
                    )
                )
            )
        steps.append(
            StepIR(
                id=sid,
                name=sid,
                source=f"m:{draw(text)}",
                code_hash="0",
                after=tuple(step_ids[:i][-1:]),
                settings=StepSettings(
                    retries=draw(st.integers(0, 3)),
                    environment=environment,
                    extra={"airflow": airflow, "docker": {draw(text): draw(text)}},
                ),
            )
        )
    pipeline_settings = {
        "description": draw(text),
        "tags": draw(st.lists(text.filter(lambda t: 0 < len(t) <= 100), max_size=2)),
    }
    pipeline = PipelineIR(
        name=draw(text),
        source=draw(text),
        parameters={draw(text): draw(text)},
        steps=tuple(steps),
        settings=PipelineSettings(extra={"airflow": pipeline_settings}),
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
    images = {"": draw(nonempty)} if mode != "python" else {}
    config = {
        "operator": mode,
        "python": draw(nonempty),
        "store_url": draw(nonempty),
        "source_root": draw(nonempty),
        "container_python": draw(nonempty),
        "namespace": draw(text),
        "docker_mounts": [f"/{draw(st.text('ab/', min_size=1))}:/{draw(st.text('cd', min_size=1))}"],
    }
    return Deployment(pipeline=pipeline, stack=stack, images=images), config


@settings(max_examples=250, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(pipelines())
def test_user_values_never_become_code(case: tuple[Deployment, dict[str, Any]]) -> None:
    dep, config = case
    source = compile_dag(dep, AirflowOrchestratorConfig(**config)).source
    check_tree(source)
    made = execute(source)
    dag = next(kw for kind, kw in made if kind == "DAG")
    assert dag.get("dag_display_name", dag["dag_id"]) == dep.pipeline.name
    assert dag["description"] == dep.pipeline.settings.extra["airflow"]["description"]
    tasks = [kw for kind, kw in made if kind.endswith("Operator")]
    assert [t.get("task_display_name", t["task_id"]) for t in tasks] == [s.id for s in dep.pipeline.steps]
    for step, task in zip(dep.pipeline.steps, tasks, strict=True):
        for key in ("pool", "queue", "owner", "doc_md"):
            assert task.get(key) == step.settings.extra["airflow"].get(key)
        if config["operator"] == "python":
            env = _unwrap(task["env"])
            assert env["CONVEYOR_STEP"] == step.id
            assert env["CONVEYOR_PYTHON"] == config["python"]
            assert env["CONVEYOR_STORE_URL"] == config["store_url"]
            assert env["CONVEYOR_SOURCE_ROOT"] == config["source_root"]
            assert task["bash_command"] == RUN_STEP  # the fixed command: it only expands variables
        else:
            args = task["command"] if config["operator"] == "docker" else task["cmds"] + task["arguments"]
            args = [_unwrap(a) for a in args]
            assert args[0] == config["container_python"]
            assert f"--step={step.id}" in args and f"--image={dep.images['']}" in args
            env = _unwrap(task["environment"] if config["operator"] == "docker" else task["env_vars"])
            assert _unwrap(task["image"]) == dep.images[""]
        for name, value in step.settings.environment.items():
            assert env[name] == value
        if config["operator"] == "kubernetes_pod":
            assert _unwrap(task.get("node_selector", {})) == (step.settings.extra["airflow"].get("node_selector") or {})


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
                operator=mode, python=tp.PAYLOADS[3], store_url=tp.PAYLOADS[1], source_root=tp.PAYLOADS[4]
            ),
        ).source
        check_tree(source)
        execute(source)
    assert not canary.exists()


def test_a_nul_in_a_step_id_is_refused_not_written() -> None:
    step = StepIR(id="a\x00b", name="a", source="m:a", code_hash="0")
    dep = Deployment(pipeline=PipelineIR(name="p", steps=(step,)), stack=StackIR(name="s", components={}))
    with pytest.raises(ConfigError, match="NUL"):
        compile_dag(dep, AirflowOrchestratorConfig())
