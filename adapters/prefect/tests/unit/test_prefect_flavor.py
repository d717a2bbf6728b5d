"""The flavor: found through its entry point, light to import, strict about its config."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

import conveyor_prefect
from conveyor.exceptions import CapabilityError, ConfigError, StackError
from conveyor.stack import Capability, flavors
from conveyor_testing import assert_facade_complete


def test_entry_point_names_the_flavor() -> None:
    flavor = flavors.get("orchestrator", "prefect")
    assert flavor.name == "prefect"
    assert Capability.SCHEDULES in flavor.capabilities and Capability.GPUS not in flavor.capabilities
    assert flavor.implementation().__name__ == "PrefectOrchestrator"


def test_flavor_module_does_not_import_prefect() -> None:
    code = (
        "import sys; from conveyor.stack import flavors; f = flavors.get('orchestrator', 'prefect'); "
        "f.validate_config({'api_url': 'http://127.0.0.1:1/api'}, component='pf'); "
        "print(sorted(m for m in sys.modules if m == 'prefect' or m.startswith('prefect.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_unknown_option_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown option 'apiurl'"):
        flavors.get("orchestrator", "prefect").validate_config({"apiurl": "x"}, component="pf")
    with pytest.raises(ConfigError, match="step_mode"):
        flavors.get("orchestrator", "prefect").validate_config({"step_mode": "thread"}, component="pf")


def test_all_is_complete_and_sorted() -> None:
    assert_facade_complete(conveyor_prefect)
    public = {n for n in conveyor_prefect._EXPORTS} | {"__version__"}
    assert set(conveyor_prefect.__all__) == public
    assert conveyor_prefect.__all__ == sorted(conveyor_prefect.__all__)
    for name in conveyor_prefect.__all__:
        assert getattr(conveyor_prefect, name) is not None


def _dead_url() -> str:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/api"  # nothing listens once the socket is closed


def test_unreachable_server_fails_fast_in_one_line() -> None:
    from conveyor_prefect import check_server

    url = _dead_url()
    started = time.perf_counter()
    with pytest.raises(StackError) as err:
        check_server(url)
    assert time.perf_counter() - started < 3
    assert url in str(err.value) and "\n" not in str(err.value)
    assert "prefect server start" in (err.value.hint or "")


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CONVEYOR_REPOSITORY", str(tmp_path))
    (tmp_path / ".conveyor").mkdir()
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _dead_stack(**config: object) -> str:
    from conveyor import Client

    client = Client()
    client.register_component("orchestrator", "pf", "prefect", {"api_url": _dead_url(), **config})
    client.register_stack("on_prefect", {"orchestrator": "pf", "artifact_store": "default"})
    return "on_prefect"


def test_pipeline_on_an_unreachable_server_is_refused_before_any_run(repo: Path) -> None:
    from conveyor import Client
    from conveyor_testing.conformance import case, load_pipeline

    stack = _dead_stack()
    pipe = load_pipeline(case("quickstart")).with_options(stack=stack)
    started = time.perf_counter()
    with pytest.raises(StackError, match="does not answer"):
        pipe(n=3)
    assert time.perf_counter() - started < 3
    assert Client().list_runs() == []


def test_bad_cron_is_refused_before_the_server_is_asked(repo: Path) -> None:
    from conveyor import Schedule
    from conveyor_testing.conformance import case, load_pipeline

    stack = _dead_stack()
    pipe = load_pipeline(case("quickstart")).with_options(stack=stack, schedule=Schedule(cron="0 25 * * *"))
    with pytest.raises(ConfigError, match="'0 25 \\* \\* \\*' is not a cron expression"):
        pipe(n=3)


def test_step_asking_for_cpu_is_a_capability_error(repo: Path) -> None:
    from conveyor_testing.conformance import case, load_pipeline

    stack = _dead_stack()
    pipe = load_pipeline(case("quickstart")).with_options(stack=stack, steps={"split": {"resources": {"cpu": 2}}})
    with pytest.raises(CapabilityError, match="cpu/memory"):
        pipe(n=3)


def test_container_mode_without_an_image_builder_says_what_to_add(repo: Path) -> None:
    from conveyor import Client
    from conveyor_testing.conformance import case, load_pipeline

    stack = _dead_stack(step_mode="container")
    pipe = load_pipeline(case("quickstart")).with_options(stack=stack)
    with pytest.raises(StackError, match="has no image-builder, but steps run in the pipeline's image") as err:
        pipe(n=3)
    assert "\n" not in str(err.value)
    assert err.value.hint == "add one: conveyor stack update on_prefect --image-builder NAME"
    assert Client().list_runs() == []


def test_container_mode_without_a_registry_says_what_to_add(repo: Path) -> None:
    from conveyor import Client
    from conveyor_testing.conformance import case, load_pipeline

    client = Client()
    client.register_component("orchestrator", "pf", "prefect", {"api_url": _dead_url(), "step_mode": "container"})
    client.register_component("image_builder", "builder", "docker", {})
    client.register_stack("boxed", {"orchestrator": "pf", "artifact_store": "default", "image_builder": "builder"})
    pipe = load_pipeline(case("quickstart")).with_options(stack="boxed")
    with pytest.raises(StackError, match="has no container-registry") as err:
        pipe(n=3)
    assert err.value.hint == "add one: conveyor stack update boxed --container-registry NAME"


def test_docker_work_pool_with_container_steps_is_refused(repo: Path) -> None:
    from conveyor import Schedule
    from conveyor_testing.conformance import case, load_pipeline

    stack = _dead_stack(step_mode="container", work_pool_type="docker")
    pipe = load_pipeline(case("quickstart")).with_options(stack=stack, schedule=Schedule(cron="0 * * * *"))
    with pytest.raises(ConfigError, match="a docker work pool runs the flow in the pipeline's image") as err:
        pipe(n=3)
    assert "--step-mode in_process" in (err.value.hint or "")


@pytest.mark.parametrize(
    ("config", "scheduled", "expected"),
    [
        ({}, False, False),
        ({"step_mode": "subprocess"}, True, False),
        ({"step_mode": "container"}, False, True),
        ({"work_pool_type": "docker"}, True, True),
        ({"work_pool_type": "docker"}, False, False),  # runs now, here: no image
    ],
)
def test_images_are_needed_only_where_steps_or_flows_run_in_them(config: dict, scheduled: bool, expected: bool) -> None:
    from conveyor import Schedule
    from conveyor.ir import ComponentIR, Deployment, PipelineIR, StackIR, StepIR
    from conveyor.orchestrators import needs_images
    from conveyor.stack import Stack

    stack = Stack(
        StackIR(
            name="s",
            components={
                "orchestrator": ComponentIR(type="orchestrator", flavor="prefect", name="pf", config=config),
                "artifact_store": ComponentIR(
                    type="artifact_store", flavor="local", name="default", config={"path": "/data"}
                ),
            },
        )
    )
    deployment = Deployment(
        pipeline=PipelineIR(name="p", steps=(StepIR(id="a", name="a", source="m:a", code_hash="0" * 16),)),
        stack=stack.ir,
        schedule=Schedule(cron="0 * * * *") if scheduled else None,
    )
    assert needs_images(deployment, stack) is expected


def test_step_container_command_carries_the_runs_parameter_overrides() -> None:
    from types import SimpleNamespace

    from conveyor.ir import StepIR
    from conveyor.runtime import step_command
    from conveyor_prefect._container import step_container_class

    step = StepIR(id="train", name="train", source="m:train", code_hash="0" * 16)
    env = SimpleNamespace(
        deployment=SimpleNamespace(id="dep1"),
        run=SimpleNamespace(id="run1"),
        overrides={"n": 5, "cfg": {"b": [1, 2], "a": "x"}},
    )
    container = step_container_class()(env, step, "reg/img@sha256:abc")
    # The one step command, as conveyor.runtime renders it: the container runs exactly that.
    expected = step_command(
        "dep1",
        "train",
        run_id="run1",
        image="reg/img@sha256:abc",
        params={"cfg": '{"a":"x","b":[1,2]}', "n": "5"},
    )
    assert container.argv() == expected
    assert container.argv()[:3] + container.command() == expected
