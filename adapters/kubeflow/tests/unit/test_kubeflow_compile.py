"""The KFP compiler: golden files, determinism, KFP's own loader, KFP's own compiler, settings, limits."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import FAKE_IMAGE

from conveyor.exceptions import CapabilityError, ConfigError, StackError
from conveyor.ir import ComponentIR, Deployment, Schedule, StackIR
from conveyor_kubeflow import MAX_SPEC_BYTES, KubeflowOrchestratorConfig, compile_pipeline
from conveyor_kubeflow._compiler import StepComponents, check_size

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("CONVEYOR_UPDATE_GOLDEN") == "1"
STORE = "postgresql+psycopg://conveyor@db.example:5432/conveyor"
STACK = StackIR(
    name="on_kfp",
    components={
        "orchestrator": ComponentIR(type="orchestrator", flavor="kubeflow", name="kf"),
        "artifact_store": ComponentIR(type="artifact_store", flavor="s3", name="s3", config={"path": "s3://b/x"}),
    },
)


def deployment(pipe: Any, images: dict[str, str] | None = None, **params: Any) -> Deployment:
    return Deployment(pipeline=pipe.trace(**params), stack=STACK, images=images or {"": FAKE_IMAGE})


def compile_(pipe: Any, config: KubeflowOrchestratorConfig | None = None, **params: Any):
    return compile_pipeline(
        deployment(pipe, **params), config or KubeflowOrchestratorConfig(gpu_type_label="gpu"), store_url=STORE
    )


def quickstart():
    from conveyor_testing.conformance import case, load_pipeline

    return load_pipeline(case("quickstart"))


def settings_demo():
    from kfp_test_pipelines import settings_demo

    return settings_demo


def docs_of(text: str) -> list[dict[str, Any]]:
    return list(yaml.safe_load_all(text))


def step_tasks(spec: dict[str, Any]) -> dict[str, Any]:
    """The tasks of the steps: inside the exit handler's DAG."""
    return spec["components"]["comp-exit-handler-1"]["dag"]["tasks"]


# -- golden files, determinism ---------------------------------------------------------
@pytest.mark.parametrize("name", ["quickstart", "settings_demo"])
def test_spec_matches_golden_file(name: str) -> None:
    pipe = {"quickstart": quickstart, "settings_demo": settings_demo}[name]()
    compiled = compile_(pipe, **({"n": 20} if name == "quickstart" else {}))
    golden = GOLDEN / f"{name}.yaml"
    if UPDATE:
        golden.write_text(compiled.text)
    assert compiled.text == golden.read_text(), f"{golden.name} differs; set CONVEYOR_UPDATE_GOLDEN=1 to rewrite it"


def test_same_pipeline_gives_same_bytes_in_another_process() -> None:
    here = compile_(settings_demo()).text
    code = (
        f"import sys; sys.path[:0] = [{str(Path(__file__).parents[1])!r}, {str(Path(__file__).parent)!r}]\n"
        "from test_kubeflow_compile import compile_, settings_demo\n"
        "sys.stdout.write(compile_(settings_demo()).text)\n"
    )
    env = dict(os.environ, PYTHONHASHSEED="12345")
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    assert other == here


def test_parameters_are_pipeline_inputs_with_their_types_and_defaults() -> None:
    spec = docs_of(compile_(settings_demo()).text)[0]
    inputs = spec["root"]["inputDefinitions"]["parameters"]
    assert {k: v["parameterType"] for k, v in inputs.items()} == {
        "n": "NUMBER_INTEGER",
        "rate": "NUMBER_DOUBLE",
        "label": "STRING",
        "flags": "LIST",
        "options": "STRUCT",
        "limit": "STRING",
    }
    assert {k: v["defaultValue"] for k, v in inputs.items()} == {
        "n": 3,
        "rate": 0.5,
        "label": "hi",
        "flags": [1, 2],
        "options": {"a": 1},
        "limit": "null",
    }
    # Every task passes every pipeline input on, so a value changed in KFP's UI reaches the steps.
    for task in [*step_tasks(spec).values(), spec["root"]["dag"]["tasks"]["conveyor-finish-run"]]:
        params = task["inputs"]["parameters"]
        channel = "" if "conveyor_step" not in params else "pipelinechannel--"
        assert {k: v["componentInputParameter"] for k, v in params.items() if "componentInputParameter" in v} == {
            k: channel + k for k in inputs
        }
        assert params["conveyor_run_id"] == {"runtimeValue": {"constant": "{{$.pipeline_job_uuid}}"}}
    args = spec["deploymentSpec"]["executors"]["exec-conveyor-step"]["container"]["args"]
    assert '{"Concat": ["n=", "{{$.inputs.parameters[\'n\']}}"]}' in args
    assert '{"Concat": ["kfp:", "{{$.inputs.parameters[\'conveyor_run_id\']}}"]}' in args


def test_dependencies_follow_the_ir_and_caching_is_off() -> None:
    compiled = compile_(settings_demo())
    tasks = step_tasks(docs_of(compiled.text)[0])
    assert compiled.tasks == {
        "prepare": "prepare",
        "train": "train",
        "report": "report",
        "train_2": "train-2",
        "report_again": "report-again",
    }
    assert {name: t.get("dependentTasks", []) for name, t in tasks.items()} == {
        "prepare": [],
        "train": ["prepare"],
        "report": ["train"],
        "train-2": ["prepare"],
        "report-again": ["train-2"],
    }
    assert {t["taskInfo"]["name"] for t in tasks.values()} == set(compiled.tasks)
    assert all(t["cachingOptions"] == {} for t in tasks.values())  # enableCache false


def test_steps_with_alike_containers_share_one_component() -> None:
    spec = docs_of(compile_(settings_demo()).text)[0]
    refs = {name: t["componentRef"]["name"] for name, t in step_tasks(spec).items()}
    assert refs == {
        "prepare": "comp-conveyor-step",
        "report": "comp-conveyor-step",
        "report-again": "comp-conveyor-step",
        "train": "comp-conveyor-step-2",
        "train-2": "comp-conveyor-step-2",
    }
    assert sorted(spec["deploymentSpec"]["executors"]) == [
        "exec-conveyor-finish-run",
        "exec-conveyor-step",
        "exec-conveyor-step-2",
    ]


def test_an_exit_task_settles_the_run_however_the_steps_end() -> None:
    spec = docs_of(compile_(quickstart(), n=20).text)[0]
    root = spec["root"]["dag"]["tasks"]
    assert sorted(root) == ["conveyor-finish-run", "exit-handler-1"]
    finish = root["conveyor-finish-run"]
    assert finish["dependentTasks"] == ["exit-handler-1"]
    assert finish["triggerPolicy"] == {"strategy": "ALL_UPSTREAM_TASKS_COMPLETED"}
    container = spec["deploymentSpec"]["executors"]["exec-conveyor-finish-run"]["container"]
    assert container["command"] + container["args"][:3] == [
        "python",
        "-m",
        "conveyor.runtime",
        "finish-run",
        "--deployment",
        deployment(quickstart(), n=20).id,
    ]
    assert container["image"] == FAKE_IMAGE


def test_step_settings_map_to_kfp_fields() -> None:
    docs = docs_of(compile_(settings_demo()).text)
    spec, platform = docs
    container = spec["deploymentSpec"]["executors"]["exec-conveyor-step-2"]["container"]
    assert container["resources"] == {
        "accelerator": {"count": "2", "resourceCount": "2", "resourceType": "nvidia.com/gpu", "type": "nvidia.com/gpu"},
        "cpuLimit": 2.0,
        "cpuRequest": 0.5,
        "memoryLimit": 2.147483648,
        "memoryRequest": 1.073741824,
        "resourceCpuLimit": "2",
        "resourceCpuRequest": "500m",
        "resourceMemoryLimit": "2Gi",
        "resourceMemoryRequest": "1Gi",
    }
    # A secret reference goes in as written, never its value: the entrypoint resolves it in the pod.
    assert container["env"] == [
        {"name": "CONVEYOR_STORE_URL", "value": STORE},
        {"name": "MODE", "value": "fast"},
        {"name": "TOKEN", "value": "{{api.token}}"},
    ]
    assert step_tasks(spec)["train"]["retryPolicy"] == {
        "backoffDuration": "5s",
        "backoffFactor": 1.0,
        "backoffMaxDuration": "3600s",
        "maxRetryCount": 2,
    }
    k8s = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]["exec-conveyor-step-2"]
    assert k8s["activeDeadlineSeconds"] == "91"
    assert k8s["nodeSelector"] == {"labels": {"pool": "gpu"}}
    assert k8s["pvcMount"][0]["mountPath"] == "/data"
    assert k8s["secretAsEnv"][0]["keyToEnv"] == [{"envVar": "HF_TOKEN", "secretKey": "token"}]
    assert [t["key"] for t in k8s["tolerations"]] == ["gpu", "spot"]
    assert "exec-conveyor-step" not in platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]


def test_gpu_type_becomes_a_node_selector_on_the_configured_label() -> None:
    from kfp_test_pipelines import report, settings_demo

    pipe = settings_demo.with_options(steps={"report_again": {"resources": {"gpu_type": "nvidia-tesla-t4"}}})
    assert report is not None
    docs = docs_of(compile_(pipe, KubeflowOrchestratorConfig(gpu_type_label="cloud.google.com/gke-accelerator")).text)
    tasks = step_tasks(docs[0])
    [label] = [k for k, t in tasks.items() if t["taskInfo"]["name"] == "report_again"]
    executor = docs[0]["components"][tasks[label]["componentRef"]["name"]]["executorLabel"]
    assert docs[0]["deploymentSpec"]["executors"][executor]["container"]["resources"]["accelerator"]["count"] == "1"
    assert docs[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"][executor]["nodeSelector"] == {
        "labels": {"cloud.google.com/gke-accelerator": "nvidia-tesla-t4"}
    }


# -- KFP's own loader and compiler -----------------------------------------------------
def test_kfp_loads_the_spec() -> None:
    from google.protobuf import json_format
    from kfp import components
    from kfp.kubernetes import kubernetes_executor_config_pb2
    from kfp.pipeline_spec import pipeline_spec_pb2

    compiled = compile_(settings_demo())
    loaded = components.load_component_from_text(compiled.text)
    assert loaded.pipeline_spec.pipeline_info.name == "settings-demo"
    assert set(loaded.component_spec.inputs) == {"n", "rate", "label", "flags", "options", "limit"}
    spec, platform = docs_of(compiled.text)
    # Strict parses: a field KFP does not know would fail here.
    json_format.ParseDict(spec, pipeline_spec_pb2.PipelineSpec())
    json_format.ParseDict(platform, pipeline_spec_pb2.PlatformSpec())
    for executor in platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"].values():
        json_format.ParseDict(executor, kubernetes_executor_config_pb2.KubernetesExecutorConfig())


def _by_step(spec: dict[str, Any]) -> dict[str, Any]:
    """Tasks keyed by their display name, with component and task references replaced by step names."""
    handler = next(t for t in spec["root"]["dag"]["tasks"].values() if "triggerPolicy" not in t)
    tasks = {
        **spec["components"][handler["componentRef"]["name"]]["dag"]["tasks"],
        **{k: t for k, t in spec["root"]["dag"]["tasks"].items() if "triggerPolicy" in t},
    }
    names = {key: t["taskInfo"]["name"] for key, t in tasks.items()}
    out = {}
    for t in tasks.values():
        component = spec["components"][t["componentRef"]["name"]]
        executor = spec["deploymentSpec"]["executors"][component["executorLabel"]]
        body = {k: v for k, v in t.items() if k not in ("componentRef", "dependentTasks")}
        body["dependentTasks"] = sorted(names.get(d, "the exit handler") for d in t.get("dependentTasks", []))
        body["component"] = {k: v for k, v in component.items() if k != "executorLabel"}
        body["executor"] = executor
        out[t["taskInfo"]["name"]] = body
    return out


def _by_step_labels(spec: dict[str, Any]) -> dict[str, Any]:
    handler = spec["components"]["comp-exit-handler-1"]["dag"]["tasks"]
    tasks = {**handler, **{k: t for k, t in spec["root"]["dag"]["tasks"].items() if "triggerPolicy" in t}}
    return {t["taskInfo"]["name"]: {"component": spec["components"][t["componentRef"]["name"]]} for t in tasks.values()}


def test_spec_is_what_kfps_own_compiler_writes_for_the_same_pipeline() -> None:
    from google.protobuf import json_format
    from kfp.pipeline_spec import pipeline_spec_pb2

    def normal(doc: dict[str, Any], proto: Any) -> dict[str, Any]:
        return json_format.MessageToDict(json_format.ParseDict(doc, proto))

    ours_text = compile_(settings_demo()).text
    ours, ours_platform = (
        normal(d, m)
        for d, m in zip(
            docs_of(ours_text), (pipeline_spec_pb2.PipelineSpec(), pipeline_spec_pb2.PlatformSpec()), strict=True
        )
    )
    deployment_id = deployment(settings_demo()).id
    from kfp_dsl_equivalent import settings_demo_in_kfp_dsl

    theirs_doc, theirs_platform_doc = settings_demo_in_kfp_dsl(FAKE_IMAGE, deployment_id, STORE)
    theirs = normal(theirs_doc, pipeline_spec_pb2.PipelineSpec())
    theirs_platform = normal(theirs_platform_doc, pipeline_spec_pb2.PlatformSpec())

    assert ours["pipelineInfo"] == theirs["pipelineInfo"]
    assert ours["root"]["inputDefinitions"] == theirs["root"]["inputDefinitions"]
    assert ours["schemaVersion"] == theirs["schemaVersion"]
    assert _by_step(ours) == _by_step(theirs)

    def platform_by_step(spec: dict[str, Any], platform: dict[str, Any]) -> dict[str, Any]:
        executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
        return {
            name: executors.get(body["component"].get("executorLabel")) for name, body in _by_step_labels(spec).items()
        }

    assert ours["root"]["dag"]["tasks"]["exit-handler-1"] == theirs["root"]["dag"]["tasks"]["exit-handler-1"]

    assert platform_by_step(ours, ours_platform) == platform_by_step(theirs, theirs_platform)


# -- what KFP cannot honour -------------------------------------------------------------
def _with_step(**options: Any) -> Any:
    from conveyor_testing.conformance import case, load_pipeline

    return load_pipeline(case("quickstart")).with_options(steps={"split": options})


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        (
            {"settings": {"kubeflow": {"gpu_count": 1}}},
            ConfigError,
            "step 'split': unknown kubeflow setting 'gpu_count'",
        ),
        ({"settings": {"kubeflow": {"cpu_limit": "two"}}}, ConfigError, "cpu_limit.*not a Kubernetes quantity"),
        (
            {"settings": {"kubeflow": {"tolerations": [{"operator": "Sometimes"}]}}},
            ConfigError,
            "tolerations.0.operator",
        ),
        (
            {"settings": {"kubeflow": {"volumes": [{"pvc_name": "d", "mount_path": "data"}]}}},
            ConfigError,
            "absolute path",
        ),
        ({"settings": {"kubeflow": {"secret_env": {"TOKEN": "no-key"}}}}, ConfigError, "SECRET_NAME:KEY"),
        ({"resources": {"gpu_type": "a100"}}, CapabilityError, "GPU type 'a100', which KFP cannot choose by itself"),
        ({"step_operator": "docker"}, CapabilityError, "on KFP every step already runs in its own pod"),
        ({"retries": 1, "retry_delay": 7200}, CapabilityError, "KFP allows at most 3600 s"),
    ],
)
def test_settings_kfp_cannot_honour_fail_at_compile_time(options: dict[str, Any], error: type, match: str) -> None:
    with pytest.raises(error, match=match) as info:
        compile_(_with_step(**options), KubeflowOrchestratorConfig(), n=5)
    assert "\n" not in str(info.value)


def test_image_that_was_not_pushed_fails_at_compile_time() -> None:
    for image in ("conveyor-quickstart:abc", "127.0.0.1:5000/ml/conveyor-quickstart:abc", ""):
        with pytest.raises(StackError, match="was not pushed|has no container image"):
            compile_pipeline(deployment(quickstart(), images={"": image}), KubeflowOrchestratorConfig())


def test_parameter_names_that_collide_in_kfp_fail() -> None:
    from kfp_test_pipelines import one

    from conveyor import pipeline

    @pipeline(name="clash")
    def clash(rate: int = 1, Rate: int = 2) -> None:
        one(rate)
        one(Rate)

    with pytest.raises(ConfigError, match="both KFP input 'rate'"):
        compile_(clash)

    @pipeline(name="reserved")
    def reserved(conveyor_step: int = 1) -> None:
        one(conveyor_step)

    with pytest.raises(ConfigError, match="cannot be a KFP input name"):
        compile_(reserved)


def test_spec_over_kfps_limit_fails_with_its_size() -> None:
    from kfp_test_pipelines import chain

    # Each step its own environment: no two tasks can share a component.
    pipe = chain(1200)
    steps = {f"s{i}": {"environment": {"STEP": "x" * 600 + str(i)}} for i in range(1200)}
    with pytest.raises(CapabilityError, match=r"is \d\.\d\d MiB, over KFP's 1\.5 MiB limit") as info:
        compile_(pipe.with_options(steps=steps))
    assert "kubeflow/pipelines#13738" in str(info.value)


def test_size_check_counts_utf8_bytes() -> None:
    compiled = compile_(quickstart(), n=3)
    check_size(compiled, "quickstart")
    big = type(compiled)(name="x", pipeline_spec={}, platform_spec=None, text="é" * (MAX_SPEC_BYTES // 2 + 1), tasks={})
    with pytest.raises(CapabilityError):
        check_size(big, "x")


def test_five_hundred_steps_stay_well_under_a_mebibyte() -> None:
    from kfp_test_pipelines import chain

    compiled = compile_(chain(500, fan=5))
    assert compiled.size < 2**20
    assert len(step_tasks(docs_of(compiled.text)[0])) == 500


def test_schedule_maps_to_a_kfp_trigger() -> None:
    from datetime import datetime

    from conveyor_kubeflow._client import recurring_trigger

    assert recurring_trigger(Schedule(cron="*/5 * * * *")) == {"cron_expression": "0 */5 * * * *", "no_catchup": True}
    assert recurring_trigger(
        Schedule(interval_seconds=3600, catchup=True, start_date=datetime(2026, 1, 2, 3, 4, 5))
    ) == {"interval_second": 3600, "no_catchup": False, "start_time": "2026-01-02T03:04:05Z"}
    with pytest.raises(ConfigError, match="whole seconds"):
        recurring_trigger(Schedule(interval_seconds=1.5))
    with pytest.raises(ConfigError, match="has 3 fields"):
        recurring_trigger(Schedule(cron="* * *"))


def test_header_names_the_pipeline_and_its_inputs() -> None:
    text = compile_(quickstart(), n=20).text
    assert text.startswith("# PIPELINE DEFINITION\n# Name: quickstart\n")
    assert "#    n: int [Default: 20]\n" in text
    assert json.loads(json.dumps(docs_of(text)[0]))  # plain data all the way


def test_alike_containers_share_one_component_and_others_are_numbered() -> None:
    components = StepComponents({"conveyor_step": {"parameterType": "STRING"}})
    container = {"command": ["python"], "image": FAKE_IMAGE}
    assert components.add(container, {}) == "conveyor-step"
    assert components.add(dict(container), {}) == "conveyor-step"
    assert components.add(container, {"imagePullPolicy": "Always"}) == "conveyor-step-2"
    assert components.add({**container, "env": [{"name": "A", "value": "1"}]}, {}) == "conveyor-step-3"
    assert list(components.components) == ["comp-conveyor-step", "comp-conveyor-step-2", "comp-conveyor-step-3"]
    assert components.components["comp-conveyor-step-2"]["executorLabel"] == "exec-conveyor-step-2"
    assert list(components.platform_executors) == ["exec-conveyor-step-2"]


# -- the one step command ------------------------------------------------------------------------
def _as_text(arg: str) -> str:
    """An argument as the pod sees it once KFP joins a Concat placeholder's parts."""
    if arg.startswith('{"Concat"'):
        return "".join(json.loads(arg)["Concat"])
    return arg


def test_every_container_runs_exactly_the_runtimes_step_and_finish_commands() -> None:
    from conveyor.runtime import finish_command, step_command

    config = KubeflowOrchestratorConfig(gpu_type_label="gpu")
    dep = deployment(settings_demo())
    spec = docs_of(compile_pipeline(dep, config, store_url=STORE).text)[0]
    step = "{{$.inputs.parameters['conveyor_step']}}"
    run_id = "{{$.inputs.parameters['conveyor_run_id']}}"
    params = {name: "{{$.inputs.parameters['" + name + "']}}" for name in dep.pipeline.parameters}
    executors = spec["deploymentSpec"]["executors"]
    finish = executors.pop("exec-conveyor-finish-run")["container"]
    assert finish["command"] + [_as_text(a) for a in finish["args"]] == finish_command(
        dep.id, run_key="kfp:" + run_id, params=params, orchestrator_run_id=run_id, python=config.python
    )
    assert executors
    for executor in executors.values():
        container = executor["container"]
        assert container["command"] + [_as_text(a) for a in container["args"]] == step_command(
            dep.id,
            step,
            run_key="kfp:" + run_id,
            image=container["image"],
            params=params,
            orchestrator_run_id=run_id,
            python=config.python,
        )
