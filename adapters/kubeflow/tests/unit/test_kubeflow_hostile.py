"""No name, parameter, setting or environment value can leave its place in a KFP spec.

Hypothesis builds deployments whose names, parameter defaults, kubeflow
settings and environment values hold line breaks of every kind, quotes,
YAML markers and tags, KFP placeholders and very long strings. Every compiled
spec must parse to exactly the documents the compiler built (one, or two with
the platform spec), its header must stay comments, every executor must run
the step entrypoint in the pipeline's image, and every value must arrive
where it belongs, unchanged.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yaml
from conftest import FAKE_IMAGE
from google.protobuf import json_format
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kfp.kubernetes import kubernetes_executor_config_pb2
from kfp.pipeline_spec import pipeline_spec_pb2

from conveyor.exceptions import ConfigError
from conveyor.ir import (
    ComponentIR,
    Deployment,
    ParameterInput,
    PipelineIR,
    PipelineSettings,
    ResourceSettings,
    StackIR,
    StepIR,
    StepSettings,
)
from conveyor.stack import merge_settings
from conveyor_kubeflow import KubeflowOrchestratorConfig, compile_pipeline
from conveyor_kubeflow._compiler import RESERVED_INPUTS, input_name, input_placeholder, task_name
from conveyor_testing.strategies import LINE_BREAKS, hostile_text, names

SETTINGS = settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
STACK = StackIR(
    name="on_kfp",
    components={"orchestrator": ComponentIR(type="orchestrator", flavor="kubeflow", name="kf")},
)
STEP_INPUT = "{{$.inputs.parameters['conveyor_step']}}"
RUN_ID_INPUT = "{{$.inputs.parameters['conveyor_run_id']}}"

text = hostile_text()
# Names that satisfy conveyor's naming rule, and (the compiler must not rely on it) any text at all.
# Names follow core's rule (the IR refuses any other); every other string is hostile.
any_name = names()
# What reaches the steps' command (step ids, parameter names) cannot hold KFP's placeholder opening.
command_name = any_name.filter(lambda n: "{{" not in n)
label_key = st.from_regex(r"\A([a-z0-9]([-a-z0-9.]{0,8}[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,8}[A-Za-z0-9])?\Z")
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False), text),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(text, inner, max_size=3)),
    max_leaves=6,
)


def kubeflow_settings(*, pipeline: bool) -> st.SearchStrategy[dict[str, Any]]:
    """The ``kubeflow`` settings that take free text, filled with hostile values."""
    optional: dict[str, st.SearchStrategy[Any]] = {
        "accelerator_type": text,
        "node_selector": st.dictionaries(label_key, text, max_size=2),
        "pod_labels": st.dictionaries(label_key, text, max_size=2),
        "pod_annotations": st.dictionaries(label_key, text, max_size=2),
        "tolerations": st.lists(
            st.fixed_dictionaries(
                {},
                optional={
                    "key": text,
                    "value": text,
                    "operator": st.sampled_from(["Equal", "Exists"]),
                    "effect": st.sampled_from(["NoSchedule", "PreferNoSchedule", "NoExecute"]),
                    "toleration_seconds": st.integers(0, 10**6),
                },
            ),
            max_size=2,
        ),
        "volumes": st.lists(
            st.fixed_dictionaries({"pvc_name": text.filter(bool), "mount_path": text.map(lambda t: "/" + t)}),
            max_size=2,
        ),
        "secret_env": st.dictionaries(
            st.from_regex(r"\A[A-Z_][A-Z0-9_]{0,8}\Z"),
            st.from_regex(r"\A[a-z0-9]{1,6}:[-._a-zA-Z0-9]{1,6}\Z"),
            max_size=2,
        ),
    }
    if pipeline:
        optional |= {"display_name": text, "description": text}
    return st.fixed_dictionaries({}, optional=optional)


@st.composite
def deployments(draw: Any) -> tuple[Deployment, KubeflowOrchestratorConfig]:
    """A deployment and an orchestrator config with hostile text wherever the IR takes text."""
    raw_params = draw(st.dictionaries(command_name, json_values, max_size=3))
    parameters: dict[str, Any] = {}
    seen: set[str] = set()
    for name, value in raw_params.items():  # names KFP can take as distinct inputs
        kname = input_name(name)
        if kname and kname not in RESERVED_INPUTS and kname not in seen:
            seen.add(kname)
            parameters[name] = value
    step_ids = draw(st.lists(command_name, min_size=1, max_size=3, unique=True))
    steps = []
    for i, sid in enumerate(step_ids):
        param = draw(st.sampled_from([None, *parameters]))
        inputs = {} if param is None else {"x": ParameterInput(value=parameters[param], pipeline_parameter=param)}
        resources = ResourceSettings(gpu_type=draw(st.none() | text))
        steps.append(
            StepIR(
                id=sid,
                name=draw(any_name),
                source=f"pipe:{draw(text)}",
                code_hash="0" * 16,
                inputs=inputs,
                after=tuple(step_ids[:i][-1:]),
                settings=StepSettings(
                    environment=draw(
                        st.dictionaries(st.one_of(st.from_regex(r"\A[A-Z_]{1,6}\Z"), text), text, max_size=3)
                    ),
                    resources=resources,
                    timeout=draw(st.none() | st.floats(0.5, 10**5)),
                    extra={"kubeflow": draw(kubeflow_settings(pipeline=False))} if draw(st.booleans()) else {},
                ),
            )
        )
    pipeline = PipelineIR(
        name=draw(any_name),
        source=draw(text),
        parameters=parameters,
        steps=tuple(steps),
        settings=PipelineSettings(extra={"kubeflow": draw(kubeflow_settings(pipeline=True))}),
    )
    images = {"": draw(st.sampled_from([FAKE_IMAGE, FAKE_IMAGE + "\n- image: evil", f"{FAKE_IMAGE}'\"#"]))}
    config = KubeflowOrchestratorConfig(
        gpu_type_label=draw(label_key),
        gpu_resource=draw(text),
        python=draw(text.filter(bool)),
        image_pull_secrets=draw(st.lists(text, max_size=2)),
    )
    return Deployment(pipeline=pipeline, stack=STACK, images=images), config


def _platform(compiled: Any, executor: str) -> dict[str, Any]:
    if compiled.platform_spec is None:
        return {}
    return compiled.platform_spec["platforms"]["kubernetes"]["deploymentSpec"]["executors"].get(executor, {})


def check_spec_parses_to_what_was_built(compiled: Any, deployment: Deployment) -> list[dict[str, Any]]:
    """The YAML is the header's comments and exactly the documents the compiler built."""
    text = compiled.text
    docs = list(yaml.safe_load_all(text))
    assert docs == [compiled.pipeline_spec] + ([compiled.platform_spec] if compiled.platform_spec else [])
    # The header: comment lines only, none holding a character YAML or an editor takes for a line break.
    parameters = deployment.pipeline.parameters
    header_lines = 4 + (1 + len(parameters) if parameters else 0)
    lines = text.split("\n")
    header, body = lines[:header_lines], lines[header_lines]
    assert all(line.startswith("# ") for line in header)
    assert not body.startswith("#")
    assert not any(c in line for line in header for c in LINE_BREAKS)
    assert header[1] == f"# Name: {compiled.name}"
    assert json.loads(header[2].removeprefix("# conveyor pipeline: ")) == deployment.pipeline.name
    assert header[3] == f"# conveyor deployment: {deployment.id}"
    # KFP's own (strict) schema: a stray field from a broken-out value would fail here.
    json_format.ParseDict(docs[0], pipeline_spec_pb2.PipelineSpec())
    if len(docs) == 2:
        json_format.ParseDict(docs[1], pipeline_spec_pb2.PlatformSpec())
        for executor in docs[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"].values():
            json_format.ParseDict(executor, kubernetes_executor_config_pb2.KubernetesExecutorConfig())
    return docs


def _expected_labels(own: dict[str, Any], pipeline: dict[str, Any], key: str) -> dict[str, str] | None:
    # conveyor's one settings merge: mappings merge key by key, the step's keys winning.
    return merge_settings(pipeline, own).get(key) or None


@SETTINGS
@given(deployments())
def test_hostile_values_stay_in_their_yaml_scalars(case: tuple[Deployment, KubeflowOrchestratorConfig]) -> None:
    deployment, config = case
    compiled = compile_pipeline(deployment, config, store_url="sqlite:////db")
    spec = check_spec_parses_to_what_was_built(compiled, deployment)[0]
    pipeline = deployment.pipeline
    pkf = pipeline.settings.extra["kubeflow"]
    image = deployment.images[""]

    info = spec["pipelineInfo"]
    assert info.get("description") == (pkf.get("description") or None)
    display = pkf.get("display_name") or (pipeline.name if info["name"] != pipeline.name else None)
    assert info.get("displayName") == (display or None)

    defaults = {input_name(name): "null" if value is None else value for name, value in pipeline.parameters.items()}
    root_inputs = spec["root"].get("inputDefinitions", {}).get("parameters", {})
    assert {k: v["defaultValue"] for k, v in root_inputs.items()} == defaults
    param_args = [
        arg
        for name in sorted(pipeline.parameters)
        for arg in ("--param", json.dumps({"Concat": [f"{name}=", input_placeholder(input_name(name))]}))
    ]

    tasks = spec["components"]["comp-exit-handler-1"]["dag"]["tasks"]
    executors = spec["deploymentSpec"]["executors"]
    for step in pipeline.steps:
        task = tasks[compiled.tasks[step.id]]
        assert task["taskInfo"]["name"] == step.id
        assert task["inputs"]["parameters"]["conveyor_step"] == {"runtimeValue": {"constant": step.id}}
        label = spec["components"][task["componentRef"]["name"]]["executorLabel"]
        container = executors[label]["container"]
        assert container["image"] == image
        assert container["command"] == [config.python, "-m", "conveyor.runtime"]
        assert container["args"] == [
            "run-step",
            "--deployment",
            deployment.id,
            "--step",
            STEP_INPUT,
            "--run-key",
            json.dumps({"Concat": ["kfp:", RUN_ID_INPUT]}),
            "--image",
            image,
            *param_args,
            "--orchestrator-run-id",
            RUN_ID_INPUT,
        ]
        env = {"CONVEYOR_STORE_URL": "sqlite:////db", **step.settings.environment}
        assert container["env"] == [{"name": k, "value": v} for k, v in sorted(env.items())]

        own = step.settings.extra.get("kubeflow", {})
        accelerator = merge_settings(pkf, own).get("accelerator_type")
        if step.settings.resources.gpu_type is not None or accelerator is not None:
            kind = accelerator or config.gpu_resource
            assert container["resources"]["accelerator"]["type"] == kind
            assert container["resources"]["accelerator"]["resourceType"] == kind
        platform = _platform(compiled, label)
        selector = dict(_expected_labels(own, pkf, "node_selector") or {})
        if step.settings.resources.gpu_type is not None and accelerator is None:
            selector[config.gpu_type_label] = step.settings.resources.gpu_type
        assert platform.get("nodeSelector", {}).get("labels", {}) == selector
        metadata = platform.get("podMetadata", {})
        assert metadata.get("labels") == _expected_labels(own, pkf, "pod_labels")
        assert metadata.get("annotations") == _expected_labels(own, pkf, "pod_annotations")
        tolerations = merge_settings(pkf, own).get("tolerations") or []
        assert [(t.get("key"), t.get("value")) for t in platform.get("tolerations", [])] == [
            (t.get("key"), t.get("value")) for t in tolerations
        ]
        volumes = merge_settings(pkf, own).get("volumes") or []
        assert [(m["constant"], m["mountPath"]) for m in platform.get("pvcMount", [])] == [
            (v["pvc_name"], v["mount_path"]) for v in volumes
        ]
        secrets = [s["secretName"] for s in platform.get("imagePullSecret", [])]
        assert secrets == config.image_pull_secrets

    finish = executors["exec-conveyor-finish-run"]["container"]
    assert finish["image"] == image
    assert finish["command"] == [config.python, "-m", "conveyor.runtime"]
    assert finish["args"] == [
        "finish-run",
        "--deployment",
        deployment.id,
        "--run-key",
        json.dumps({"Concat": ["kfp:", RUN_ID_INPUT]}),
        *param_args,
        "--orchestrator-run-id",
        RUN_ID_INPUT,
    ]


# The known attack: a pipeline name that ends the header's comment line and starts a second document.
INJECTED = (
    "---\npipelineInfo: {name: evil}\ndeploymentSpec: {executors: {x: {container: {image: evil, command: [sh]}}}}\n"
)


@pytest.mark.parametrize("line_break", LINE_BREAKS)
def test_a_pipeline_name_cannot_end_the_header_comment(line_break: str) -> None:
    step = StepIR(id="s", name="s", source="m:s", code_hash="0")
    name = "p" + line_break + INJECTED.replace("\n", line_break)
    with pytest.raises(ValueError, match="pipeline name"):
        PipelineIR(name=name, steps=(step,))  # the naming rule refuses it before anything is compiled
    # And were such a name ever to reach the compiler, the header would still hold it as one comment.
    unchecked = PipelineIR.model_construct(name=name, steps=(step,), parameters={}, source=None)
    deployment = Deployment.model_construct(pipeline=unchecked, stack=STACK, images={"": FAKE_IMAGE}, schedule=None)
    compiled = compile_pipeline(deployment, KubeflowOrchestratorConfig())
    [spec] = check_spec_parses_to_what_was_built(compiled, deployment)
    assert spec["pipelineInfo"]["displayName"] == name
    assert [e["container"]["image"] for e in spec["deploymentSpec"]["executors"].values()] == [FAKE_IMAGE] * 2


@SETTINGS
@given(st.lists(any_name, max_size=6))
def test_task_names_are_distinct_kubernetes_names(step_ids: list[str]) -> None:
    used: set[str] = set()
    made = [task_name(step_id, used) for step_id in step_ids]
    assert len(set(made)) == len(made) and used == set(made)
    assert all(re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name) for name in made)


@pytest.mark.parametrize(
    "placeholder", ["{{$.pipeline_task_name}}", "a{{b", "{{$.inputs.parameters['conveyor_step']}}"]
)
def test_step_ids_and_parameter_names_kfp_would_replace_are_refused(placeholder: str) -> None:
    # KFP resolves placeholders in constant inputs and in the command: the step id would become another step's.
    # Core's naming rule refuses braces in ids and names; the compiler refuses them again, for records made otherwise.
    with pytest.raises(ValueError, match="step id"):
        StepIR(id=placeholder, name="s", source="m:s", code_hash="0")
    step = StepIR.model_construct(id=placeholder, name="s", source="m:s", code_hash="0", inputs={}, outputs={})
    step = step.model_copy(update={"after": (), "settings": StepIR.model_fields["settings"].default})
    unchecked = PipelineIR.model_construct(name="p", steps=(step,), parameters={}, source=None)
    with pytest.raises(ConfigError, match="KFP reads as the start of a placeholder") as info:
        compile_pipeline(
            Deployment.model_construct(pipeline=unchecked, stack=STACK, images={"": FAKE_IMAGE}, schedule=None),
            KubeflowOrchestratorConfig(),
        )
    assert "\n" not in str(info.value)
