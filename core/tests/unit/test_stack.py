"""Flavors through entry points, stack validation, and capability checks at compile time."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from conveyor import Client, ResourceSettings, Schedule
from conveyor.exceptions import CapabilityError, ConfigError, FlavorNotFoundError, NotFoundError, StackError
from conveyor.stack import flavors
from tests_support import fake_distribution, write_module


def test_builtin_flavors_are_entry_points() -> None:
    assert {"orchestrator.local", "artifact_store.local", "artifact_store.fsspec", "artifact_store.s3"} <= set(
        flavors.names()
    )


def test_a_missing_flavor_without_a_record_says_how_flavors_are_installed() -> None:
    from conveyor.stack import FlavorRegistry

    registry = FlavorRegistry()
    registry._entry_points = {}  # nothing installed but the core
    with pytest.raises(FlavorNotFoundError, match=r"no orchestrator flavor named 'airflow' is installed") as err:
        registry.get("orchestrator", "airflow")
    assert err.value.hint is not None and "pip install ./core ./adapters/NAME" in err.value.hint


def test_a_component_records_how_to_install_its_flavor_for_machines_that_lack_it(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plugin = repo / "plugin"
    fake_distribution(
        plugin,
        "conveyor-fancy",
        {"conveyor.flavors": {"orchestrator.fancy": "fancy_flavor:FancyFlavor"}},
        {"fancy_flavor": FANCY},
    )
    monkeypatch.syspath_prepend(str(plugin))
    from conveyor.stack import FlavorRegistry

    monkeypatch.setattr("conveyor.stack._flavor.flavors", FlavorRegistry())
    monkeypatch.setattr("conveyor.stack._stack.flavors", __import__("conveyor.stack._flavor").stack._flavor.flavors)
    monkeypatch.setattr("conveyor.stack.flavors", __import__("conveyor.stack._flavor").stack._flavor.flavors)
    client = Client()
    client.register_component("orchestrator", "f", "fancy", {})
    assert client.store.get_component("orchestrator", "f").install == "pip install conveyor-fancy"
    client.register_stack("fancy", {"orchestrator": "f", "artifact_store": "default"})
    # Another machine: the distribution is not installed there.
    fresh = FlavorRegistry()
    fresh._entry_points = {}
    monkeypatch.setattr("conveyor.stack._stack.flavors", fresh)
    from conveyor._repository import Repository

    stack = Repository.current().stack("fancy")
    with pytest.raises(FlavorNotFoundError, match=r"the orchestrator flavor 'fancy' is not installed here") as err:
        stack.orchestrator  # noqa: B018
    assert err.value.hint == "run: pip install conveyor-fancy"


FANCY = """
from pydantic import BaseModel, ConfigDict
from conveyor.orchestrators import BaseOrchestrator
from conveyor.stack import ComponentType, Flavor

class FancyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

class Fancy(BaseOrchestrator):
    def _run(self, deployment, ctx):
        return None

class FancyFlavor(Flavor):
    type = ComponentType.ORCHESTRATOR
    name = "fancy"
    install = "pip install conveyor-fancy"

    @property
    def config_class(self):
        return FancyConfig

    def implementation(self):
        return Fancy
"""


def test_an_unknown_flavor_lists_the_installed_ones() -> None:
    with pytest.raises(
        FlavorNotFoundError, match="no orchestrator flavor named 'nope'.*installed orchestrator flavors: .*local"
    ):
        flavors.get("orchestrator", "nope")


def test_a_broken_plugin_is_reported_and_skipped(tmp_path: Path) -> None:
    fake_distribution(
        tmp_path,
        "brokenflavors",
        {"conveyor.flavors": {"orchestrator.broken": "broken_flavor_mod:Flavor"}},
        modules={"broken_flavor_mod": "raise ImportError('needs a missing library')\n"},
    )
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); from conveyor.stack import flavors;"
        "print(sorted(f.name for f in flavors.all('orchestrator')))"
    )
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert "'local'" in out.stdout and "broken" not in out.stdout
    assert (
        "skipped flavor plugin orchestrator.broken from brokenflavors: ImportError: needs a missing library"
        in out.stderr
    )


def test_component_config_is_validated(repo: Path) -> None:
    with pytest.raises(ConfigError, match="unknown option 'max_wokers'.*options are: max_workers, mode"):
        Client().register_component("orchestrator", "x", "local", {"max_wokers": 3})
    with pytest.raises(ConfigError, match="mode"):
        Client().register_component("orchestrator", "x", "local", {"mode": "cluster"})
    assert [c.name for c in Client().store.list_components("orchestrator")] == ["default"]


def test_stacks_need_an_orchestrator_and_an_artifact_store(repo: Path) -> None:
    with pytest.raises(StackError, match="needs an artifact-store"):
        Client().register_stack("half", {"orchestrator": "default"})
    with pytest.raises(NotFoundError, match="no stack named 'ghost'"):
        Client().activate_stack("ghost")


PIPE = """
from conveyor import pipeline, step, ResourceSettings

@step
def plain() -> int:
    return 1

@step(resources=ResourceSettings(gpu_count=1))
def gpu() -> int:
    return 1

@step(step_operator="docker")
def offloaded() -> int:
    return 1

@pipeline
def plain_pipe() -> None:
    plain()

@pipeline
def gpu_pipe() -> None:
    gpu()

@pipeline
def offloaded_pipe() -> None:
    offloaded()
"""


def test_capabilities_are_checked_before_anything_runs(repo: Path) -> None:
    write_module(repo, "cap_pipe", PIPE)
    sys.path.insert(0, str(repo))
    try:
        import cap_pipe

        with pytest.raises(CapabilityError, match="step 'gpu' asks for GPUs, which the orchestrator flavor 'local'"):
            cap_pipe.gpu_pipe()
        with pytest.raises(CapabilityError, match="cannot run schedules"):
            cap_pipe.plain_pipe.with_options(schedule=Schedule(cron="0 * * * *"))()
        with pytest.raises(StackError, match="asks for step operator 'docker', which stack 'default' lacks"):
            cap_pipe.offloaded_pipe()
    finally:
        sys.path.remove(str(repo))
    assert Client().list_runs() == []
    assert ResourceSettings().is_empty()
