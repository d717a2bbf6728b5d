"""Deployment → KFP v2 pipeline spec (plus its Kubernetes platform spec), as plain data.

The spec is written directly in the shape ``kfp.compiler`` gives an
equivalent hand-written pipeline of container components (the tests compare
the two), so compiling needs no kfp and is a pure function of the
deployment: the same deployment gives the same bytes.

Every step is a task of a container component that runs the step
entrypoint in the pipeline's image. Steps whose containers are alike (same
image, environment, resources and Kubernetes extras) share one component, as
calls of one component do in KFP's DSL; the step a task runs is its
``conveyor_step`` input. The steps sit inside an exit handler
(``dsl.ExitHandler``) whose exit task runs ``finish-run`` of the step
entrypoint, so the conveyor run is settled however the KFP run ends, even
when a pod is killed or its image cannot be pulled. That keeps the spec small: KFP refuses specs much
over 1.5 MiB at run time, and this compiler refuses them at compile time.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

import yaml

from conveyor.exceptions import CapabilityError, ConfigError, StackError
from conveyor.ir import canonical_json
from conveyor.runtime import finish_command, step_command
from conveyor.stack import step_settings
from conveyor_kubeflow._settings import (
    NAMESPACE,
    PipelineKubeflowSettings,
    StepKubeflowSettings,
    pipeline_settings,
)

if TYPE_CHECKING:
    from conveyor.ir import Deployment, StepIR
    from conveyor_kubeflow._flavor import KubeflowOrchestratorConfig

SCHEMA_VERSION = "2.1.0"
SDK_VERSION = "conveyor-kubeflow-0.1.0"
MAX_SPEC_BYTES = 1536 * 1024
"""KFP stores and hands on a run's spec whole; past about 1.5 MiB runs fail
(kubeflow/pipelines#13738), so bigger specs are refused when compiling."""

RUN_ID_INPUT = "conveyor_run_id"
STEP_INPUT = "conveyor_step"
RESERVED_INPUTS = frozenset({RUN_ID_INPUT, STEP_INPUT})
JOB_ID_PLACEHOLDER = "{{$.pipeline_job_uuid}}"
"""KFP's id of the run (``dsl.PIPELINE_JOB_ID_PLACEHOLDER``): every task of a run sees the same."""
COMPONENT_BASE = "conveyor-step"
EXIT_HANDLER = "exit-handler-1"
"""The task (and ``comp-`` component) that holds the steps, named as kfp names its first exit handler."""
RUN_KEY = "kfp:" + "{{$.inputs.parameters['" + RUN_ID_INPUT + "']}}"
"""The conveyor run key of a KFP run: every task of one KFP run joins the same conveyor run."""
FINISH = "conveyor-finish-run"
"""The exit task, and its component and executor."""
CHANNEL = "pipelinechannel--"
"""Prefix of the pipeline inputs as the exit handler's DAG sees them (kfp's spelling)."""

_PARAMETER_TYPES = {
    bool: "BOOLEAN",
    int: "NUMBER_INTEGER",
    float: "NUMBER_DOUBLE",
    str: "STRING",
    list: "LIST",
    dict: "STRUCT",
}
_TYPE_WORDS = {
    "BOOLEAN": "bool",
    "NUMBER_INTEGER": "int",
    "NUMBER_DOUBLE": "float",
    "STRING": "str",
    "LIST": "list",
    "STRUCT": "dict",
}


class _Dumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # type: ignore[misc]
    """Plain YAML: shared dicts are written out each time, never as anchors."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


_MEMORY_UNITS = {
    "E": 10**18,
    "Ei": 2**60,
    "P": 10**15,
    "Pi": 2**50,
    "T": 10**12,
    "Ti": 2**40,
    "G": 10**9,
    "Gi": 2**30,
    "M": 10**6,
    "Mi": 2**20,
    "K": 10**3,
    "k": 10**3,
    "Ki": 2**10,
    "": 1,
}


def k8s_name(name: str) -> str:
    """A name made fit for Kubernetes as KFP makes it: lowercase, ``[-0-9a-z]``, no edge hyphens."""
    return re.sub("-+", "-", re.sub("[^-0-9a-z]+", "-", name.lower())).strip("-")


def input_name(name: str) -> str:
    """A parameter name as KFP's DSL makes it: lowercase ``[_0-9a-z]``."""
    return re.sub("[^_0-9a-z]+", "_", name.lower()).strip("_")


def input_placeholder(name: str) -> str:
    """KFP's placeholder for an input parameter of the component."""
    return "{{$.inputs.parameters['" + name + "']}}"


def concat(*parts: str) -> str:
    """KFP's ``Concat`` placeholder, spelt as kfp writes it (kfp.local matches its first bytes)."""
    return json.dumps({"Concat": list(parts)})


_PLACEHOLDER = re.compile(r"(\{\{\$\.[^}]*\}\})")


def kfp_arg(arg: str) -> str:
    """One argument of the step command as KFP writes it: text around an input placeholder becomes a Concat."""
    parts = [p for p in _PLACEHOLDER.split(arg) if p]
    return concat(*parts) if len(parts) > 1 else arg


def kfp_command(argv: list[str]) -> dict[str, list[str]]:
    """A container's ``command`` (the interpreter and ``-m conveyor.runtime``) and ``args``, from the step command."""
    return {"command": argv[:3], "args": [kfp_arg(a) for a in argv[3:]]}


@dataclass(frozen=True)
class CompiledPipeline:
    """A compiled pipeline: the KFP spec as data and as the YAML KFP loads.

    ``tasks`` maps each step id to its KFP task name.
    """

    name: str
    pipeline_spec: dict[str, Any]
    platform_spec: dict[str, Any] | None
    text: str
    tasks: dict[str, str]

    @property
    def size(self) -> int:
        """Bytes of the YAML."""
        return len(self.text.encode("utf-8"))

    @property
    def filename(self) -> str:
        """``<pipeline name>.yaml``."""
        return f"{self.name}.yaml"


# -- parameters ----------------------------------------------------------------------
def parameter_type(value: Any, where: str) -> str:
    """KFP's parameter type of a JSON value (``None`` is a STRING that holds JSON)."""
    if value is None:
        return "STRING"
    kind = _PARAMETER_TYPES.get(type(value))
    if kind is None:
        raise ConfigError(f"{where} is a {type(value).__name__}, which KFP cannot take as a pipeline input")
    return kind


class PipelineInput(NamedTuple):
    """A pipeline parameter as a KFP pipeline input."""

    key: str
    """Its KFP input name (:func:`input_name`)."""
    kind: str
    """KFP's parameter type (:func:`parameter_type`)."""
    default: Any
    """Its default (a None default is the JSON text ``"null"``)."""


def pipeline_inputs(deployment: Deployment) -> dict[str, PipelineInput]:
    """Every pipeline parameter as a KFP input, by conveyor name, sorted by name.

    Raises:
        ConfigError: a parameter KFP cannot take, or two that are the same KFP input.
    """
    pipeline = deployment.pipeline
    out: dict[str, PipelineInput] = {}
    seen: dict[str, str] = {}
    for name in sorted(pipeline.parameters):
        value = pipeline.parameters[name]
        kname = input_name(name)
        where = f"parameter {name!r} of pipeline {pipeline.name!r}"
        # The name is text of the step's command, where KFP replaces placeholders.
        check_no_placeholder(name, where, "rename the parameter")
        if not kname or kname in RESERVED_INPUTS:
            raise ConfigError(f"{where} cannot be a KFP input name", "rename the parameter")
        if kname in seen:
            raise ConfigError(
                f"parameters {seen[kname]!r} and {name!r} of pipeline {pipeline.name!r} are both KFP input {kname!r}",
                "rename one of them",
            )
        seen[kname] = name
        kind = parameter_type(value, where)
        # None cannot be a KFP default: the input holds JSON text, "null" until changed.
        out[name] = PipelineInput(kname, kind, "null" if value is None else value)
    return out


# -- resources and Kubernetes extras -------------------------------------------------------
def _cpu_number(text: str) -> float:
    return float(text[:-1]) / 1000 if text.endswith("m") else float(text)


def _memory_number(text: str) -> float:
    match = re.fullmatch(r"([0-9]+)([A-Za-z]*)", text)
    assert match is not None
    return float(match.group(1)) * _MEMORY_UNITS[match.group(2)] / 10**9


def _resources(
    step: StepIR, kf: StepKubeflowSettings, config: KubeflowOrchestratorConfig, platform: dict[str, Any]
) -> dict[str, Any]:
    res = step.settings.resources
    where = f"step {step.id!r}"
    cpu, memory = res.cpu_quantity(), res.memory_quantity()
    values = {
        "cpuRequest": kf.cpu_request or cpu,
        "cpuLimit": kf.cpu_limit or cpu,
        "memoryRequest": kf.memory_request or memory,
        "memoryLimit": kf.memory_limit or memory,
    }
    out: dict[str, Any] = {}
    for key, text in values.items():
        if text is None:
            continue
        # The numeric fields are what KFP servers before 2.3 read; kfp writes both.
        out[key] = _cpu_number(text) if key.startswith("cpu") else _memory_number(text)
        out["resource" + key[0].upper() + key[1:]] = text
    count = res.gpu_count
    if res.gpu_type is not None and kf.accelerator_type is None:
        if config.gpu_type_label is None:
            raise CapabilityError(
                f"{where} asks for GPU type {res.gpu_type!r}, which KFP cannot choose by itself",
                "set the orchestrator's gpu_type_label (e.g. cloud.google.com/gke-accelerator), or the step's "
                'kubeflow accelerator_type: settings={"kubeflow": {"accelerator_type": "..."}}',
            )
        platform.setdefault("nodeSelector", {}).setdefault("labels", {})[config.gpu_type_label] = res.gpu_type
    if count == 0:
        count = None
    if count is not None or res.gpu_type is not None or kf.accelerator_type is not None:
        count = 1 if count is None else count
        kind = kf.accelerator_type or config.gpu_resource
        out["accelerator"] = {"count": str(count), "resourceCount": str(count), "resourceType": kind, "type": kind}
    return out


def _platform(timeout: float | None, kf: StepKubeflowSettings, config: KubeflowOrchestratorConfig) -> dict[str, Any]:
    """A pod's entry of the Kubernetes platform spec (kfp-kubernetes' ``KubernetesExecutorConfig``)."""
    out: dict[str, Any] = {}
    if timeout is not None:
        out["activeDeadlineSeconds"] = str(max(1, int(-(-timeout // 1))))
    if kf.image_pull_policy is not None:
        out["imagePullPolicy"] = kf.image_pull_policy
    if kf.node_selector:
        out["nodeSelector"] = {"labels": dict(sorted(kf.node_selector.items()))}
    metadata: dict[str, Any] = {}
    if kf.pod_annotations:
        metadata["annotations"] = dict(kf.pod_annotations)
    if kf.pod_labels:
        metadata["labels"] = dict(kf.pod_labels)
    if metadata:
        out["podMetadata"] = metadata
    if kf.volumes:
        out["pvcMount"] = [
            {
                "constant": v.pvc_name,
                "mountPath": v.mount_path,
                "pvcNameParameter": {"runtimeValue": {"constant": v.pvc_name}},
            }
            for v in kf.volumes
        ]
    out.update(_platform_common(config, {**config.secret_env, **(kf.secret_env or {})}))
    if kf.tolerations:
        tolerations = []
        for t in kf.tolerations:
            item: dict[str, Any] = {}
            if t.effect is not None:
                item["effect"] = t.effect
            if t.key is not None:
                item["key"] = t.key
            item["operator"] = t.operator
            if t.toleration_seconds is not None:
                item["tolerationSeconds"] = str(t.toleration_seconds)
            if t.value is not None:
                item["value"] = t.value
            tolerations.append(item)
        out["tolerations"] = tolerations
    return out


def _platform_common(config: KubeflowOrchestratorConfig, secret_env: dict[str, str]) -> dict[str, Any]:
    """What every pod of the pipeline gets: image pull secrets, environment from secrets."""
    out: dict[str, Any] = {}
    if config.image_pull_secrets:
        out["imagePullSecret"] = [
            {"secretName": s, "secretNameParameter": {"runtimeValue": {"constant": s}}}
            for s in config.image_pull_secrets
        ]
    if secret_env:
        by_secret: dict[str, list[dict[str, str]]] = {}
        for env in sorted(secret_env):
            secret, _, key = secret_env[env].partition(":")
            by_secret.setdefault(secret, []).append({"envVar": env, "secretKey": key})
        out["secretAsEnv"] = [
            {
                "keyToEnv": keys,
                "optional": False,
                "secretName": secret,
                "secretNameParameter": {"runtimeValue": {"constant": secret}},
            }
            for secret, keys in sorted(by_secret.items())
        ]
    return out


def _retry_policy(step: StepIR, kf: StepKubeflowSettings) -> dict[str, Any] | None:
    s = step.settings
    if not s.retries:
        return None
    if s.retry_delay > 3600:
        raise CapabilityError(
            f"step {step.id!r} waits {s.retry_delay:g} s between tries; KFP allows at most 3600 s", "lower retry_delay"
        )
    return {
        "backoffDuration": f"{s.retry_delay:g}s",
        "backoffFactor": float(kf.retry_backoff_factor or 1.0),
        "backoffMaxDuration": f"{kf.retry_max_delay or 3600:g}s",
        "maxRetryCount": s.retries,
    }


def check_no_placeholder(text: str, what: str, hint: str) -> None:
    """Refuse text that KFP would read as a placeholder (``{{$.pipeline_task_name}}``) and replace.

    Raises:
        ConfigError: ``text`` holds ``{{``.
    """
    if "{{" in text:
        raise ConfigError(f"{what} holds '{{{{', which KFP reads as the start of a placeholder", hint)


def _check_step(step: StepIR) -> None:
    # The step id reaches the step's command as a constant input, which KFP resolves when it is a placeholder.
    check_no_placeholder(step.id, f"step {step.id!r}", "rename the step (@step(name=...))")
    if step.settings.step_operator is not None:
        raise CapabilityError(
            f"step {step.id!r} asks for step operator {step.settings.step_operator!r}; on KFP every step "
            "already runs in its own pod",
            "drop step_operator for this stack, or give the step kubeflow settings (resources, node_selector)",
        )


def check_image(image: str | None, step_id: str | None) -> str:
    """An image reference KFP pods can pull: pushed to a registry and pinned by digest.

    Raises:
        StackError: no image, or one that was not pushed.
    """
    what = f"step {step_id!r}" if step_id else "the pipeline"
    if not image:
        raise StackError(f"{what} has no container image", "give the stack an image builder and a container registry")
    name = image.split("@", 1)[0]
    first = name.split("/", 1)[0]
    if "@sha256:" not in image or "/" not in name or not ("." in first or ":" in first or first == "localhost"):
        raise StackError(
            f"image {image!r} of {what} was not pushed to a registry (no registry host or @sha256 digest)",
            "give the stack a container registry so the image builder pushes it",
        )
    return image


# -- the spec, built in parts ---------------------------------------------------------------------
@dataclass(frozen=True)
class SpecContext:
    """What every builder of one spec reads: the deployment, the config, and what follows from them alone."""

    deployment: Deployment
    config: KubeflowOrchestratorConfig
    settings: PipelineKubeflowSettings
    """The pipeline's ``kubeflow`` settings."""
    defaults: StepKubeflowSettings
    """The pipeline's ``kubeflow`` settings that are every step's defaults."""
    inputs: dict[str, PipelineInput]
    """The pipeline inputs, by conveyor parameter name."""
    params: dict[str, str]
    """``{parameter: its input's placeholder}`` for every pipeline input, so a value changed in KFP reaches the step."""
    env: dict[str, str]
    """The environment every pod gets (the metadata store's URL, when one is given)."""


def spec_context(deployment: Deployment, config: KubeflowOrchestratorConfig, store_url: str | None) -> SpecContext:
    """Everything the builders share, checked once.

    Raises:
        ConfigError: a pipeline ``kubeflow`` setting or a parameter KFP cannot take.
    """
    pipeline = deployment.pipeline
    settings = pipeline_settings(pipeline.settings.extra, pipeline.name)
    defaults = StepKubeflowSettings.model_validate(
        settings.model_dump(include=set(StepKubeflowSettings.model_fields), exclude_none=True)
    )
    inputs = pipeline_inputs(deployment)
    return SpecContext(
        deployment=deployment,
        config=config,
        settings=settings,
        defaults=defaults,
        inputs=inputs,
        params={name: input_placeholder(put.key) for name, put in inputs.items()},
        env={"CONVEYOR_STORE_URL": store_url} if store_url else {},
    )


def env_list(env: dict[str, str]) -> list[dict[str, str]]:
    """A container's ``env``, sorted by name."""
    return [{"name": k, "value": v} for k, v in sorted(env.items())]


def step_container(
    ctx: SpecContext, step: StepIR, kf: StepKubeflowSettings, platform: dict[str, Any]
) -> dict[str, Any]:
    """The container of a step's task: the step entrypoint in the step's image, with its environment and resources.

    Its GPU type, when it has one, becomes a node selector of ``platform``.

    Raises:
        StackError: an image that was not pushed.
        ConfigError, CapabilityError: resources KFP cannot take.
    """
    image = check_image(ctx.deployment.image_for(step.id), step.id if step.id in ctx.deployment.images else None)
    # A secret reference ({{name.key}}) goes in as written; the entrypoint resolves it in the pod.
    env = {**ctx.env, **step.settings.environment}
    # The one step command; the step and the run come from the task's inputs.
    argv = step_command(
        ctx.deployment.id,
        input_placeholder(STEP_INPUT),
        run_key=RUN_KEY,
        image=image,
        params=ctx.params,
        orchestrator_run_id=input_placeholder(RUN_ID_INPUT),
        python=ctx.config.python,
    )
    container: dict[str, Any] = {**kfp_command(argv), "image": image}
    if env:
        container["env"] = env_list(env)
    resources = _resources(step, kf, ctx.config, platform)
    if resources:
        container["resources"] = resources
    return container


@dataclass
class StepComponents:
    """The components and executors of the step tasks: steps whose containers are alike share one.

    Args:
        inputs: the input definitions every step component has.
    """

    inputs: dict[str, Any]
    components: dict[str, Any] = field(default_factory=dict)
    executors: dict[str, Any] = field(default_factory=dict)
    platform_executors: dict[str, Any] = field(default_factory=dict)
    _labels: dict[str, str] = field(default_factory=dict)

    def add(self, container: dict[str, Any], platform: dict[str, Any]) -> str:
        """The label of the component that runs ``container`` in a pod with ``platform``; new when none is alike."""
        key = canonical_json([container, platform])
        label = self._labels.get(key)
        if label is None:
            label = COMPONENT_BASE if not self._labels else f"{COMPONENT_BASE}-{len(self._labels) + 1}"
            self._labels[key] = label
            self.components[f"comp-{label}"] = {
                "executorLabel": f"exec-{label}",
                "inputDefinitions": {"parameters": self.inputs},
            }
            self.executors[f"exec-{label}"] = {"container": container}
            if platform:
                self.platform_executors[f"exec-{label}"] = platform
        return label


def step_component_inputs(ctx: SpecContext) -> dict[str, Any]:
    """The input definitions of a step component: every pipeline input, the run and the step."""
    inputs = {put.key: {"parameterType": put.kind} for put in ctx.inputs.values()}
    inputs[RUN_ID_INPUT] = {"parameterType": "STRING"}
    inputs[STEP_INPUT] = {"parameterType": "STRING"}
    return inputs


def task_name(step_id: str, used: set[str]) -> str:
    """A step's KFP task name: its id made a Kubernetes name, numbered when taken; added to ``used``."""
    name = k8s_name(step_id) or "step"
    base, n = name, 1
    while name in used:
        n += 1
        name = f"{base}-{n}"
    used.add(name)
    return name


def _run_id_value() -> dict[str, Any]:
    return {"runtimeValue": {"constant": JOB_ID_PLACEHOLDER}}


def step_task(
    ctx: SpecContext, step: StepIR, kf: StepKubeflowSettings, label: str, task_names: dict[str, str]
) -> dict[str, Any]:
    """A step's task in the exit handler's DAG; ``task_names`` names the tasks of the steps before it.

    Raises:
        CapabilityError: a retry delay KFP cannot take.
    """
    parameters: dict[str, Any] = {
        put.key: {"componentInputParameter": CHANNEL + put.key} for put in ctx.inputs.values()
    }
    parameters[RUN_ID_INPUT] = _run_id_value()
    parameters[STEP_INPUT] = {"runtimeValue": {"constant": step.id}}
    task: dict[str, Any] = {
        "cachingOptions": {},  # conveyor caches; KFP's own cache would skip the entrypoint
        "componentRef": {"name": f"comp-{label}"},
        "inputs": {"parameters": parameters},
        "taskInfo": {"name": step.id},
    }
    upstream = step.upstream()
    if upstream:
        task["dependentTasks"] = sorted(task_names[u] for u in upstream)
    retry = _retry_policy(step, kf)
    if retry is not None:
        task["retryPolicy"] = retry
    return task


def step_tasks(ctx: SpecContext, components: StepComponents) -> tuple[dict[str, Any], dict[str, str]]:
    """The tasks of the steps, by task name, and each step's task name; their components go into ``components``.

    Raises:
        ConfigError, CapabilityError, StackError: a step KFP cannot run as it asks.
    """
    tasks: dict[str, Any] = {}
    task_names: dict[str, str] = {}
    used: set[str] = set()
    for step in ctx.deployment.pipeline.steps:
        _check_step(step)
        extra = step.settings.extra
        kf = (
            step_settings(
                StepKubeflowSettings,
                NAMESPACE,
                ctx.deployment.pipeline.settings.extra,
                extra,
                where=f"step {step.id!r}",
            )
            if extra.get(NAMESPACE)
            else ctx.defaults
        )
        platform = _platform(step.settings.timeout, kf, ctx.config)
        label = components.add(step_container(ctx, step, kf, platform), platform)
        name = task_name(step.id, used)
        task_names[step.id] = name
        tasks[name] = step_task(ctx, step, kf, label, task_names)
    return tasks, task_names


def finish_component(ctx: SpecContext) -> dict[str, Any]:
    """The exit task's component: it takes every pipeline input and the run."""
    return {
        "executorLabel": f"exec-{FINISH}",
        "inputDefinitions": {
            "parameters": {put.key: {"parameterType": put.kind} for put in ctx.inputs.values()}
            | {RUN_ID_INPUT: {"parameterType": "STRING"}}
        },
    }


def finish_container(ctx: SpecContext) -> dict[str, Any]:
    """The exit task's container: ``finish-run`` of the step entrypoint, in the pipeline's image.

    Raises:
        StackError: an image that was not pushed.
    """
    deployment = ctx.deployment
    argv = finish_command(
        deployment.id,
        run_key=RUN_KEY,
        params=ctx.params,
        orchestrator_run_id=input_placeholder(RUN_ID_INPUT),
        python=ctx.config.python,
    )
    image = deployment.images.get("") or deployment.image_for(deployment.pipeline.steps[0].id)
    container: dict[str, Any] = {**kfp_command(argv), "image": check_image(image, None)}
    if ctx.env:
        container["env"] = env_list(ctx.env)
    return container


def finish_platform(ctx: SpecContext) -> dict[str, Any]:
    """The exit task's pod: the pipeline's Kubernetes defaults (tolerations, node selector, secrets) apply to it too."""
    return _platform(None, ctx.defaults, ctx.config)


def exit_handler_component(ctx: SpecContext, tasks: dict[str, Any]) -> dict[str, Any]:
    """The component of the exit handler: a DAG of the step tasks, taking every pipeline input."""
    component: dict[str, Any] = {"dag": {"tasks": tasks}}
    if ctx.inputs:
        component["inputDefinitions"] = {
            "parameters": {CHANNEL + put.key: {"parameterType": put.kind} for put in ctx.inputs.values()}
        }
    return component


def root_component(ctx: SpecContext) -> dict[str, Any]:
    """The pipeline's root: the exit handler, then the exit task however it ended; the pipeline's inputs."""
    handler: dict[str, Any] = {"componentRef": {"name": f"comp-{EXIT_HANDLER}"}}
    if ctx.inputs:
        handler["inputs"] = {
            "parameters": {CHANNEL + put.key: {"componentInputParameter": put.key} for put in ctx.inputs.values()}
        }
    handler["taskInfo"] = {"name": EXIT_HANDLER}
    finish = {
        "cachingOptions": {},
        "componentRef": {"name": f"comp-{FINISH}"},
        "dependentTasks": [EXIT_HANDLER],
        "inputs": {
            "parameters": {
                **{put.key: {"componentInputParameter": put.key} for put in ctx.inputs.values()},
                RUN_ID_INPUT: _run_id_value(),
            }
        },
        "taskInfo": {"name": FINISH},
        "triggerPolicy": {"strategy": "ALL_UPSTREAM_TASKS_COMPLETED"},
    }
    root: dict[str, Any] = {"dag": {"tasks": {EXIT_HANDLER: handler, FINISH: finish}}}
    if ctx.inputs:
        root["inputDefinitions"] = {
            "parameters": {
                put.key: {"defaultValue": put.default, "isOptional": True, "parameterType": put.kind}
                for put in ctx.inputs.values()
            }
        }
    return root


def pipeline_info(ctx: SpecContext) -> dict[str, Any]:
    """``pipelineInfo``: the pipeline's Kubernetes name, and the name KFP's UI shows when that differs."""
    pipeline = ctx.deployment.pipeline
    info: dict[str, Any] = {"name": k8s_name(pipeline.name) or "pipeline"}
    if ctx.settings.description:
        info["description"] = ctx.settings.description
    display = ctx.settings.display_name or (pipeline.name if info["name"] != pipeline.name else None)
    if display:
        info["displayName"] = display
    return info


def platform_spec(executors: dict[str, Any]) -> dict[str, Any] | None:
    """The Kubernetes platform spec of the executors that have pod settings; None when none has."""
    if not executors:
        return None
    return {"platforms": {"kubernetes": {"deploymentSpec": {"executors": executors}}}}


def compile_pipeline(
    deployment: Deployment, config: KubeflowOrchestratorConfig, *, store_url: str | None = None
) -> CompiledPipeline:
    """Compile a deployment (with its images) into a KFP v2 pipeline spec.

    Args:
        deployment: a prepared deployment; ``images`` must hold pushed images.
        config: the orchestrator's config.
        store_url: the metadata store URL written into every step's
            environment (without password); None when a secret gives it.

    Raises:
        ConfigError: a kubeflow setting or a parameter KFP cannot take.
        CapabilityError: a step asks for what KFP cannot honour, or the spec is over KFP's size limit.
        StackError: an image that was not pushed.
    """
    ctx = spec_context(deployment, config, store_url)
    steps = StepComponents(step_component_inputs(ctx))
    tasks, task_names = step_tasks(ctx, steps)
    components = dict(steps.components)
    executors = dict(steps.executors)
    platform_executors = dict(steps.platform_executors)
    components[f"comp-{FINISH}"] = finish_component(ctx)
    executors[f"exec-{FINISH}"] = {"container": finish_container(ctx)}
    finish = finish_platform(ctx)
    if finish:
        platform_executors[f"exec-{FINISH}"] = finish
    components[f"comp-{EXIT_HANDLER}"] = exit_handler_component(ctx, tasks)
    info = pipeline_info(ctx)
    spec = {
        "components": components,
        "deploymentSpec": {"executors": executors},
        "pipelineInfo": info,
        "root": root_component(ctx),
        "schemaVersion": SCHEMA_VERSION,
        "sdkVersion": SDK_VERSION,
    }
    platform = platform_spec(platform_executors)
    compiled = CompiledPipeline(
        name=info["name"],
        pipeline_spec=spec,
        platform_spec=platform,
        text=render(ctx, info["name"], spec, platform),
        tasks=task_names,
    )
    check_size(compiled, deployment.pipeline.name)
    return compiled


def header(ctx: SpecContext, name: str) -> list[str]:
    """The comment lines above the spec, as kfp writes them, plus the conveyor pipeline and deployment.

    User text in a comment is JSON with ASCII escapes: no line break of any kind can end the comment.
    """
    lines = [
        "# PIPELINE DEFINITION",
        f"# Name: {name}",
        f"# conveyor pipeline: {json.dumps(ctx.deployment.pipeline.name)}",
        f"# conveyor deployment: {ctx.deployment.id}",
    ]
    if ctx.inputs:
        lines.append("# Inputs:")
        for put in ctx.inputs.values():
            lines.append(
                f"#    {put.key}: {_TYPE_WORDS[put.kind]} [Default: {json.dumps(put.default, sort_keys=True)}]"
            )
    return lines


def render(ctx: SpecContext, name: str, spec: dict[str, Any], platform: dict[str, Any] | None) -> str:
    """The YAML KFP loads: the header, the pipeline spec, and the platform spec as a second document."""
    docs = [spec] if platform is None else [spec, platform]
    body = yaml.dump_all(docs, Dumper=_Dumper, sort_keys=True, default_flow_style=False, allow_unicode=True, width=1000)
    return "\n".join(header(ctx, name)) + "\n" + body


def check_size(compiled: CompiledPipeline, pipeline: str) -> None:
    """Refuse a spec KFP would refuse at run time.

    Raises:
        CapabilityError: the YAML is over :data:`MAX_SPEC_BYTES`.
    """
    if compiled.size > MAX_SPEC_BYTES:
        raise CapabilityError(
            f"the KFP spec of pipeline {pipeline!r} is {compiled.size / 2**20:.2f} MiB, over KFP's "
            f"{MAX_SPEC_BYTES / 2**20:.1f} MiB limit (kubeflow/pipelines#13738)",
            "split the pipeline into smaller ones, or give its steps fewer distinct settings",
        )
