"""The cache serves only what is really there and really the same; values and parameters are checked."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conveyor import Client
from tests_support import write_module

PIPE = """
import json, os, sys
from typing import Annotated
from conveyor import pipeline, step

@step(environment={env!r})
def mode_step() -> Annotated[str, "mode"]:
    with open("calls.txt", "a") as f:
        f.write("mode\\n")
    return os.environ.get("MODE", "")

@step
def typed(n: int) -> Annotated[int, "value"]:
    with open("calls.txt", "a") as f:
        f.write("typed\\n")
    return {result}

@step
def after(value: int) -> int:
    open("after_ran", "w").close()
    return value

@pipeline(name="cachepipe")
def cachepipe(n: int = 1):
    mode_step()
    after(typed(n=n))

if __name__ == "__main__":
    cachepipe(**json.loads(sys.argv[1]))
"""


def _write(repo: Path, env: dict[str, str] | None = None, result: str = "n") -> None:
    write_module(repo, "cachepipe", PIPE.format(env=env or {"MODE": "train"}, result=result))


def _run(repo: Path, **params: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "cachepipe.py", json.dumps(params)], cwd=repo, capture_output=True, text=True, check=False
    )


def _calls(repo: Path) -> list[str]:
    path = repo / "calls.txt"
    return path.read_text().split() if path.exists() else []


def _last(step: str) -> object:
    return Client().get_pipeline("cachepipe").last_run.steps[step]


def test_environment_values_are_part_of_the_cache_key(repo: Path) -> None:
    _write(repo, env={"MODE": "train"})
    assert _run(repo).returncode == 0
    _write(repo, env={"MODE": "eval"})
    assert _run(repo).returncode == 0
    assert _calls(repo).count("mode") == 2
    assert _last("mode_step").outputs["mode"].load() == "eval"
    assert _run(repo).returncode == 0
    assert _calls(repo).count("mode") == 2  # unchanged: cached


def _artifact_files(repo: Path, step: str) -> list[Path]:
    uri = Path(_last(step).outputs["value" if step == "typed" else "mode"].uri)
    return sorted(p for p in uri.rglob("*") if p.is_file())


@pytest.mark.parametrize("damage", ["delete", "truncate", "extra"])
def test_a_damaged_cached_artifact_runs_the_step_again(repo: Path, damage: str) -> None:
    _write(repo)
    assert _run(repo).returncode == 0
    files = _artifact_files(repo, "typed")
    assert files
    if damage == "delete":
        files[0].unlink()
    elif damage == "truncate":
        files[0].write_bytes(b"")
    else:
        (files[0].parent / "stray.bin").write_bytes(b"x")
    result = _run(repo)
    assert result.returncode == 0, result.stderr
    assert _calls(repo).count("typed") == 2
    assert "is damaged" in result.stderr
    assert not _last("typed").cached
    assert _last("typed").outputs["value"].load() == 1


def test_a_cache_hit_needs_the_current_store_not_a_path_that_starts_the_same(repo: Path) -> None:
    _write(repo)
    assert _run(repo).returncode == 0
    client = Client()
    default = str(client.get_stack("default").components["artifact_store"].config["path"])
    twin = default[:-1]  # ".../artifact": every path of the default store starts with it, as a string
    client.register_component("artifact_store", "twin", "local", {"path": twin})
    client.register_stack("twin", {"orchestrator": "default", "artifact_store": "twin"})
    env = {**os.environ, "CONVEYOR_STACK": "twin"}
    result = subprocess.run([sys.executable, "cachepipe.py", "{}"], cwd=repo, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert _calls(repo).count("typed") == 2
    assert Path(_last("typed").outputs["value"].uri).is_relative_to(twin)


def test_a_return_value_of_the_wrong_type_fails_the_step_before_it_is_saved(repo: Path) -> None:
    _write(repo, result="'not an int'")
    result = _run(repo)
    assert result.returncode != 0
    assert "returned a str for output 'value', which is declared builtins.int" in result.stderr
    step = _last("typed")
    assert step.status == "failed" and step.outputs == {}
    assert not (repo / "after_ran").exists()
    assert Client().list_artifacts("value") == []


def test_a_parameter_that_does_not_fit_is_one_line_before_any_step_runs(repo: Path) -> None:
    _write(repo)
    result = _run(repo, n="abc")
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "parameter 'n' of pipeline 'cachepipe' is 'abc', which is not a valid builtins.int" in result.stderr
    assert _calls(repo) == []


def test_nan_in_a_yaml_step_parameter_is_refused(repo: Path) -> None:
    from conveyor.exceptions import ConfigError

    _write(repo)
    (repo / "run.yaml").write_text("steps:\n  typed:\n    parameters: {n: .nan}\n")
    import cachepipe

    with pytest.raises(ConfigError, match="which JSON cannot hold"):
        cachepipe.cachepipe.with_options(config_path=repo / "run.yaml").trace()
    assert math.isnan(float("nan"))


def test_a_parameter_over_one_mebibyte_is_refused_with_a_hint(repo: Path) -> None:
    from conveyor.exceptions import DefinitionError

    _write(repo)
    import cachepipe

    big = "x" * (2 << 20)
    with pytest.raises(DefinitionError, match=r"2\.0 MiB of JSON; parameters are at most 1 MiB.*as artifacts"):
        cachepipe.cachepipe.trace(n=big)


def test_parameters_are_stored_once(repo: Path) -> None:
    _write(repo)
    assert _run(repo, n=7).returncode == 0
    run = Client().get_pipeline("cachepipe").last_run
    assert run.record.parameters == {}  # the deployment holds them
    assert run.parameters == {"n": 7}
    assert run.steps["typed"].record.parameters == {}
    assert run.steps["typed"].parameters == {"n": 7}
