"""The ``conveyor`` command line: repositories, stacks and stack components."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests_support import as_json, fails, init_repository, invoke, ok


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh repository of its own, as the working folder."""
    monkeypatch.setenv("CONVEYOR_REPOSITORY", str(tmp_path))
    init_repository(tmp_path)
    monkeypatch.delenv("CONVEYOR_STACK", raising=False)
    monkeypatch.delenv("CONVEYOR_STORE_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def snapshot(repo: Path) -> dict[str, Any]:
    """Everything a failed command must leave as it was."""
    stacks = as_json("stack", "list")
    components = {
        kind: as_json(kind, "list")
        for kind in ("orchestrator", "artifact-store", "container-registry", "image-builder", "step-operator")
    }
    for items in (stacks, *components.values()):
        for item in items:
            item.pop("updated", None)
    return {"stacks": stacks, "components": components, "config": (repo / ".conveyor" / "config.json").read_text()}


# -- init -------------------------------------------------------------------------------
def test_init_creates_the_repository_and_its_default_stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CONVEYOR_REPOSITORY", raising=False)
    monkeypatch.delenv("CONVEYOR_STORE_URL", raising=False)
    monkeypatch.delenv("CONVEYOR_STACK", raising=False)
    monkeypatch.chdir(tmp_path)
    target = tmp_path / "project"
    out = ok("init", str(target))
    assert f"Created a conveyor repository in {target / '.conveyor'}" in out
    assert (target / ".conveyor" / "conveyor.db").is_file()
    assert json.loads((target / ".conveyor" / "config.json").read_text())["active_stack"] == "default"

    monkeypatch.chdir(target)
    stacks = as_json("stack", "list")
    assert [(s["name"], s["active"]) for s in stacks] == [("default", True)]
    assert stacks[0]["components"]["orchestrator"]["flavor"] == "local"
    assert stacks[0]["components"]["artifact_store"]["config"]["path"] == str(target / ".conveyor" / "artifacts")
    assert "already exists" in ok("init", str(target))


def test_version_and_help() -> None:
    assert ok("--version").strip() == "conveyor 0.1.0"
    out = ok("--help")
    for name in (
        "init",
        "stack",
        "orchestrator",
        "artifact-store",
        "container-registry",
        "image-builder",
        "step-operator",
        "pipeline",
        "run",
        "artifact",
        "model",
    ):
        assert f"  {name} " in out


# -- components -------------------------------------------------------------------------
def test_component_register_list_describe_update_delete(repo: Path) -> None:
    out = ok("orchestrator", "register", "procs", "--flavor", "local", "--mode", "process", "--max-workers=4")
    assert "Registered orchestrator 'procs' (flavor local)" in out

    listed = {c["name"]: c for c in as_json("orchestrator", "list")}
    assert set(listed) == {"default", "procs"}
    assert listed["procs"]["config"] == {"mode": "process", "max_workers": 4}
    assert listed["procs"]["stacks"] == []
    assert listed["default"]["stacks"] == ["default"]

    table = ok("orchestrator", "list")
    assert "procs" in table and '"max_workers": 4' in table

    described = as_json("orchestrator", "describe", "procs")
    assert (described["type"], described["flavor"], described["config"]) == (
        "orchestrator",
        "local",
        {"mode": "process", "max_workers": 4},
    )
    text = ok("orchestrator", "describe", "procs")
    assert "Flavor:" in text and "max_workers: 4" in text

    ok("orchestrator", "update", "procs", "--max-workers", "8")
    assert as_json("orchestrator", "describe", "procs")["config"] == {"mode": "process", "max_workers": 8}

    assert "Deleted orchestrator 'procs'" in ok("orchestrator", "delete", "procs", "-y")
    assert [c["name"] for c in as_json("orchestrator", "list")] == ["default"]


def test_component_options_are_parsed_as_json_when_they_parse(repo: Path) -> None:
    ok(
        "artifact-store",
        "register",
        "remote",
        "--flavor",
        "fsspec",
        "--path",
        "memory://bucket/x",
        "--storage-options",
        '{"skip_instance_cache": true, "n": 2}',
    )
    config = as_json("artifact-store", "describe", "remote")["config"]
    assert config == {"path": "memory://bucket/x", "storage_options": {"skip_instance_cache": True, "n": 2}}


def test_bare_flag_is_true_and_validated_by_the_flavor(repo: Path) -> None:
    before = snapshot(repo)
    error = fails("orchestrator", "register", "o", "--flavor", "local", "--fast")
    assert "unknown option 'fast'" in error and "options are: max_workers, mode" in error
    assert snapshot(repo) == before


def test_flavor_list(repo: Path) -> None:
    flavors = {f["name"]: f for f in as_json("orchestrator", "flavor", "list")}
    assert "local" in flavors
    assert {"parallelism", "retries"} <= set(flavors["local"]["capabilities"])
    assert flavors["local"]["options"] == ["max_workers", "mode"]
    assert flavors["local"]["description"]
    details = {o["name"]: o for o in flavors["local"]["option_details"]}
    assert details["mode"]["type"] == "thread|process" and details["mode"]["default"] == "thread"
    assert details["max_workers"]["type"] == "int" and details["max_workers"]["default"] == 32
    assert details["max_workers"]["description"] == "How many steps may run at once."
    stores = {f["name"]: f for f in as_json("artifact-store", "flavor", "list")}
    assert {"local", "fsspec"} <= set(stores)
    (path,) = [o for o in stores["local"]["option_details"] if o["name"] == "path"]
    assert path["required"] is True and path["type"] == "str"
    listed = ok("orchestrator", "flavor", "list")
    assert "local" in listed and "parallelism" in listed
    assert re.search(r"--mode\s+thread\|process\s+thread$", listed, re.M), listed
    assert re.search(r"--max-workers\s+int\s+32$", listed, re.M), listed
    assert re.search(r"--path\s+str\s+\(required\)$", ok("artifact-store", "flavor", "list"), re.M)


def test_flavor_describe_explains_each_option(repo: Path) -> None:
    text = ok("orchestrator", "flavor", "describe", "local")
    assert text.startswith("local: runs steps on this machine")
    assert "How many steps may run at once." in text
    assert as_json("orchestrator", "flavor", "describe", "local")["options"] == ["max_workers", "mode"]
    assert "no orchestrator flavor named 'nope'" in fails("orchestrator", "flavor", "describe", "nope")


def test_component_delete_asks_first(repo: Path) -> None:
    ok("orchestrator", "register", "extra", "--flavor", "local")
    result = invoke("orchestrator", "delete", "extra", input="n\n")
    assert result.exit_code == 1 and "Delete orchestrator 'extra'?" in result.output
    assert as_json("orchestrator", "describe", "extra")["name"] == "extra"
    result = invoke("orchestrator", "delete", "extra", input="y\n")
    assert result.exit_code == 0 and "Deleted orchestrator 'extra'." in result.output
    assert "no orchestrator named 'nope'" in fails("orchestrator", "delete", "nope")


def test_component_list_of_an_empty_type(repo: Path) -> None:
    assert as_json("step-operator", "list") == []
    assert "No step-operators." in ok("step-operator", "list")


# -- bad component input: one line, nothing changed ---------------------------------------
def test_unknown_flavor_names_the_installed_ones(repo: Path) -> None:
    before = snapshot(repo)
    error = fails("orchestrator", "register", "x", "--flavor", "nosuch")
    assert "no orchestrator flavor named 'nosuch'" in error
    installed = error.split("installed orchestrator flavors: ", 1)[1].split(")", 1)[0].split(", ")
    assert "local" in installed
    assert snapshot(repo) == before


def test_a_missing_flavor_says_how_flavors_are_installed(repo: Path) -> None:
    before = snapshot(repo)
    error = fails("orchestrator", "register", "af", "--flavor", "no_such_engine")
    assert "no orchestrator flavor named 'no_such_engine' is installed" in error
    assert "pip install ./core ./adapters/NAME" in error
    assert snapshot(repo) == before


def test_unknown_config_option_names_the_valid_ones(repo: Path) -> None:
    before = snapshot(repo)
    error = fails("artifact-store", "register", "a", "--flavor", "local", "--path", "/tmp/x", "--colour", "red")
    assert "unknown option 'colour'" in error and "options are: path" in error
    assert snapshot(repo) == before


def test_bad_config_value_is_one_line(repo: Path) -> None:
    before = snapshot(repo)
    error = fails("orchestrator", "register", "o", "--flavor", "local", "--max-workers", "0")
    assert "max_workers" in error
    assert snapshot(repo) == before


def test_bad_update_changes_nothing(repo: Path) -> None:
    ok("orchestrator", "register", "procs", "--flavor", "local", "--max-workers", "2")
    before = snapshot(repo)
    assert "unknown option 'nope'" in fails("orchestrator", "update", "procs", "--nope", "1")
    assert "no orchestrator named 'ghost'" in fails("orchestrator", "update", "ghost", "--max-workers", "3")
    assert snapshot(repo) == before


def test_duplicate_component_name(repo: Path) -> None:
    before = snapshot(repo)
    error = fails("orchestrator", "register", "default", "--flavor", "local")
    assert "already exists" in error
    assert snapshot(repo) == before


def test_deleting_a_component_used_by_a_stack_is_refused(repo: Path) -> None:
    before = snapshot(repo)
    error = fails("artifact-store", "delete", "default")
    assert "used by stack 'default'" in error
    assert snapshot(repo) == before


def test_component_name_must_come_first(repo: Path) -> None:
    result = invoke("orchestrator", "register", "--mode", "thread", "o", "--flavor", "local")
    assert result.exit_code == 2
    assert "give the orchestrator NAME first" in result.stderr


def test_stray_word_among_component_options_is_a_usage_error(repo: Path) -> None:
    result = invoke("orchestrator", "register", "o", "--flavor", "local", "--mode", "thread", "extra")
    assert result.exit_code == 2
    assert "unexpected argument 'extra'" in result.stderr


def test_update_without_options_is_a_usage_error(repo: Path) -> None:
    result = invoke("orchestrator", "update", "default")
    assert result.exit_code == 2
    assert "nothing to change" in result.stderr


# -- stacks -----------------------------------------------------------------------------
def _register_parts(repo: Path) -> None:
    ok("orchestrator", "register", "procs", "--flavor", "local", "--mode", "process")
    ok("artifact-store", "register", "other", "--flavor", "local", "--path", str(repo / "other-artifacts"))


def test_stack_register_list_describe_set(repo: Path) -> None:
    _register_parts(repo)
    assert "Registered stack 'dev'" in ok("stack", "register", "dev", "-o", "procs", "-a", "other")
    stacks = {s["name"]: s for s in as_json("stack", "list")}
    assert set(stacks) == {"default", "dev"}
    assert stacks["default"]["active"] and not stacks["dev"]["active"]
    assert stacks["dev"]["components"]["orchestrator"]["name"] == "procs"
    assert stacks["dev"]["components"]["artifact_store"]["name"] == "other"

    table = ok("stack", "list").splitlines()
    active_rows = [line for line in table if line.startswith("*")]
    assert len(active_rows) == 1 and "default" in active_rows[0]

    described = as_json("stack", "describe", "dev")
    assert described["name"] == "dev" and described["active"] is False
    assert described["components"]["orchestrator"]["config"] == {"mode": "process"}
    assert as_json("stack", "describe")["name"] == "default"  # the active one
    assert "procs" in ok("stack", "describe", "dev")

    assert "Active stack: dev" in ok("stack", "set", "dev")
    assert json.loads((repo / ".conveyor" / "config.json").read_text())["active_stack"] == "dev"
    assert as_json("stack", "describe")["name"] == "dev"
    assert [s["name"] for s in as_json("stack", "list") if s["active"]] == ["dev"]


def test_stack_register_with_set_activates_it(repo: Path) -> None:
    _register_parts(repo)
    ok("stack", "register", "dev", "--orchestrator", "procs", "--artifact-store", "other", "--set")
    assert json.loads((repo / ".conveyor" / "config.json").read_text())["active_stack"] == "dev"


def test_stack_update_copy_delete(repo: Path) -> None:
    _register_parts(repo)
    ok("stack", "copy", "default", "dev")
    dev = as_json("stack", "describe", "dev")
    assert dev["components"]["orchestrator"]["name"] == "default"

    ok("stack", "update", "dev", "-o", "procs", "-a", "other")
    dev = as_json("stack", "describe", "dev")
    assert (dev["components"]["orchestrator"]["name"], dev["components"]["artifact_store"]["name"]) == (
        "procs",
        "other",
    )
    assert as_json("stack", "describe", "default")["components"]["orchestrator"]["name"] == "default"

    assert "Deleted stack 'dev'" in ok("stack", "delete", "dev", "--yes")
    assert [s["name"] for s in as_json("stack", "list")] == ["default"]
    # its components stay registered
    assert {c["name"] for c in as_json("orchestrator", "list")} == {"default", "procs"}


def test_stack_delete_asks_first(repo: Path) -> None:
    ok("stack", "copy", "default", "dev")
    result = invoke("stack", "delete", "dev", input="n\n")
    assert result.exit_code == 1
    assert "dev" in [s["name"] for s in as_json("stack", "list")]
    result = invoke("stack", "delete", "dev", input="y\n")
    assert result.exit_code == 0
    assert [s["name"] for s in as_json("stack", "list")] == ["default"]


def test_stack_update_needs_something_to_change(repo: Path) -> None:
    result = invoke("stack", "update", "default")
    assert result.exit_code == 2
    assert "nothing to change" in result.stderr


def test_stack_update_remove_contradiction_is_a_usage_error(repo: Path) -> None:
    result = invoke("stack", "update", "default", "-s", "x", "--remove-step-operator")
    assert result.exit_code == 2


# -- bad stack input: one line, nothing changed -------------------------------------------
def test_unknown_stack(repo: Path) -> None:
    before = snapshot(repo)
    for args in (
        ("stack", "set", "ghost"),
        ("stack", "describe", "ghost"),
        ("stack", "delete", "ghost", "--yes"),
        ("stack", "update", "ghost", "-o", "default"),
        ("stack", "copy", "ghost", "g2"),
    ):
        assert "no stack named 'ghost'" in fails(*args)
    assert snapshot(repo) == before


def test_stack_without_artifact_store(repo: Path) -> None:
    before = snapshot(repo)
    error = fails("stack", "register", "half", "-o", "default")
    assert "needs a" in error and "--artifact-store NAME" in error
    assert snapshot(repo) == before


def test_stack_with_unknown_component(repo: Path) -> None:
    before = snapshot(repo)
    error = fails("stack", "register", "s", "-o", "ghost", "-a", "default", "--set")
    assert "no orchestrator named 'ghost'" in error
    assert snapshot(repo) == before


def test_duplicate_stack_name(repo: Path) -> None:
    before = snapshot(repo)
    assert "already exists" in fails("stack", "copy", "default", "default")
    assert snapshot(repo) == before


def test_deleting_the_active_stack_is_refused(repo: Path) -> None:
    ok("stack", "copy", "default", "dev")
    ok("stack", "set", "dev")
    before = snapshot(repo)
    error = fails("stack", "delete", "dev", "--yes")
    assert "stack 'dev' is active" in error and "conveyor stack set" in error
    # refused before asking, so a user never confirms a delete that cannot happen
    error = fails("stack", "delete", "dev")
    assert "is active" in error
    assert snapshot(repo) == before


def test_removing_a_required_component_is_not_offered(repo: Path) -> None:
    result = invoke("stack", "update", "default", "--remove-orchestrator")
    assert result.exit_code == 2


# -- errors and interrupts ----------------------------------------------------------------
def test_ctrl_c_exits_130_with_one_line(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from conveyor.client import Client

    def interrupted(self: Client) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(Client, "list_stacks", interrupted)
    result = invoke("stack", "list")
    assert result.exit_code == 130
    assert result.stderr.strip() == "conveyor: interrupted"
