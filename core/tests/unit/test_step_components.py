"""Experiment trackers, data validators and model deployers: component types like the others."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor import Client
from conveyor.exceptions import StackError, StepFailedError
from conveyor.stack import ComponentType
from tests_support import as_json, fails, fake_distribution, ok, write_module

PLUGIN = """
import contextlib, json, os
from pydantic import BaseModel, ConfigDict
from conveyor.exceptions import ConveyorError
from conveyor.stack import ComponentType, DataValidator, ExperimentTracker, Flavor, ModelDeployer

class NotesConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    folder: str
    reachable: bool = True

class Notes(ExperimentTracker):
    @contextlib.contextmanager
    def step_scope(self, context):
        if not self.config.reachable:
            raise ConveyorError("notes server at folder is unreachable", "start it")
        path = os.path.join(self.config.folder, context.step_id + ".json")
        with open(path, "w") as f:
            json.dump({"run": context.run_id, "code": context.code_hash, "phase": "entered"}, f)
        context.add_link("notes", "file://" + path)
        try:
            yield
        except BaseException:
            outcome = "failed"
            raise
        else:
            outcome = "ok"
        finally:
            with open(path, "w") as f:
                json.dump({"run": context.run_id, "code": context.code_hash, "phase": outcome}, f)

class NotesFlavor(Flavor):
    type = ComponentType.EXPERIMENT_TRACKER
    name = "notes"
    description = "writes a note per step run"
    @property
    def config_class(self):
        return NotesConfig
    def implementation(self):
        return Notes

class EmptyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

class Checker(DataValidator):
    def validate(self, data, schema, **options):
        return all(isinstance(x, schema) for x in data)

class CheckerFlavor(Flavor):
    type = ComponentType.DATA_VALIDATOR
    name = "checker"
    @property
    def config_class(self):
        return EmptyConfig
    def implementation(self):
        return Checker

class NoDeployer(ModelDeployer):
    pass

class NoDeployerFlavor(Flavor):
    type = ComponentType.MODEL_DEPLOYER
    name = "nothing"
    @property
    def config_class(self):
        return EmptyConfig
    def implementation(self):
        return NoDeployer
"""

PIPE = """
from conveyor import pipeline, step, get_step_context

@step(experiment_tracker="notes", data_validator="checker")
def train(x: int) -> int:
    assert get_step_context().data_validator.validate([x], int)
    with open(get_step_context().experiment_tracker.config.folder + "/body", "w") as f:
        f.write("ran")
    return x + 1

@step(experiment_tracker="notes")
def boom() -> int:
    raise ValueError("no")

@pipeline
def tracked(x: int = 1) -> None:
    train(x)

@pipeline
def failing() -> None:
    boom()
"""


@pytest.fixture
def plugin(repo: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    folder = repo / "plugin"
    fake_distribution(
        folder,
        "conveyor_notes",  # underscore: a dist-info folder named conveyor-... would hide conveyor itself
        {
            "conveyor.flavors": {
                "experiment_tracker.notes": "notes_flavor:NotesFlavor",
                "data_validator.checker": "notes_flavor:CheckerFlavor",
                "model_deployer.nothing": "notes_flavor:NoDeployerFlavor",
            }
        },
        {"notes_flavor": PLUGIN},
    )
    monkeypatch.syspath_prepend(str(folder))
    from conveyor.stack import FlavorRegistry

    fresh = FlavorRegistry()
    for where in ("conveyor.stack._flavor.flavors", "conveyor.stack._stack.flavors", "conveyor.stack.flavors"):
        monkeypatch.setattr(where, fresh)
    write_module(repo, "tracked_pipe", PIPE)
    sys.path.insert(0, str(repo))
    notes = repo / "notes"
    notes.mkdir()
    yield notes
    sys.path.remove(str(repo))
    sys.modules.pop("tracked_pipe", None)


def test_the_new_types_are_managed_like_the_others(plugin: Path) -> None:
    ok("experiment-tracker", "register", "nt", "--flavor", "notes", "--folder", str(plugin))
    ok("data-validator", "register", "chk", "--flavor", "checker")
    ok("model-deployer", "register", "dep", "--flavor", "nothing")
    assert [c["name"] for c in as_json("experiment-tracker", "list")] == ["nt"]
    assert [f["name"] for f in as_json("experiment-tracker", "flavor", "list")] == ["notes"]
    assert [f["name"] for f in as_json("data-validator", "flavor", "list")] == ["checker"]
    assert [f["name"] for f in as_json("model-deployer", "flavor", "list")] == ["nothing"]
    ok("experiment-tracker", "update", "nt", "--reachable", "false")
    assert as_json("experiment-tracker", "describe", "nt")["config"] == {"folder": str(plugin), "reachable": False}
    assert "nope" in fails("experiment-tracker", "register", "x", "--flavor", "notes", "--folder", "f", "--nope", "1")

    ok("stack", "register", "ml", "-o", "default", "-a", "default", "-e", "nt", "-d", "chk", "-m", "dep")
    components = as_json("stack", "describe", "ml")["components"]
    assert {components[t]["name"] for t in ("experiment_tracker", "data_validator", "model_deployer")} == {
        "nt",
        "chk",
        "dep",
    }
    assert "ml" in fails("experiment-tracker", "delete", "nt", "-y")  # refused while a stack uses it
    ok("stack", "update", "ml", "--remove-experiment-tracker", "--remove-data-validator", "--remove-model-deployer")
    assert set(as_json("stack", "describe", "ml")["components"]) == {"orchestrator", "artifact_store"}
    ok("experiment-tracker", "delete", "nt", "-y")
    assert as_json("experiment-tracker", "list") == []
    out = ok("--help")
    for name in ("experiment-tracker", "data-validator", "model-deployer", "service"):
        assert f"  {name} " in out


def test_a_step_that_names_a_tracker_the_stack_lacks_fails_at_compile_time(plugin: Path) -> None:
    import tracked_pipe

    with pytest.raises(StackError, match="step 'train' asks for experiment-tracker 'notes', which stack 'default'"):
        tracked_pipe.tracked()
    assert Client().list_runs() == []
    assert not (plugin / "body").exists()


def _ml_stack(plugin: Path, *, reachable: bool = True) -> None:
    ok(
        "experiment-tracker",
        "register",
        "nt",
        "--flavor",
        "notes",
        "--folder",
        str(plugin),
        "--reachable",
        str(reachable).lower(),
    )
    ok("data-validator", "register", "chk", "--flavor", "checker")
    ok("stack", "register", "ml", "-o", "default", "-a", "default", "-e", "nt", "-d", "chk", "--set")


def test_the_tracker_wraps_the_body_and_its_link_is_shown_by_run_describe(plugin: Path) -> None:
    import json

    import tracked_pipe

    _ml_stack(plugin)
    run = tracked_pipe.tracked()
    note = json.loads((plugin / "train.json").read_text())
    assert note["phase"] == "ok" and note["run"] == run.id and note["code"]
    assert (plugin / "body").read_text() == "ran"
    described = ok("run", "describe", run.name)
    assert "train: notes" in described and str(plugin / "train.json") in described
    assert as_json("run", "describe", run.name)["links"] == {"train: notes": f"file://{plugin / 'train.json'}"}

    with pytest.raises(StepFailedError):
        tracked_pipe.failing()
    assert json.loads((plugin / "boom.json").read_text())["phase"] == "failed"


def test_an_unreachable_tracker_fails_the_step_in_one_line_before_its_body(plugin: Path) -> None:
    import tracked_pipe

    _ml_stack(plugin, reachable=False)
    with pytest.raises(StepFailedError, match="notes server at folder is unreachable") as err:
        tracked_pipe.tracked()
    assert "\n" not in str(err.value)
    assert not (plugin / "body").exists()


def test_service_commands_need_a_model_deployer(repo: Path) -> None:
    out = fails("service", "list")
    assert "has no model-deployer" in out and "--model-deployer NAME" in out
    assert ComponentType.from_cli("model-deployer") == ComponentType.MODEL_DEPLOYER
