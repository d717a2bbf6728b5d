"""Caching: content-based keys, exact re-runs, and no hits without bytes."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

from conveyor import Client
from tests_support import write_module

PIPE = """
from typing import Annotated
from conveyor import pipeline, step

@step
def load(n: int) -> Annotated[list[int], "numbers"]:
    return list(range(n))

@step
def double(numbers: list[int]) -> Annotated[list[int], "doubled"]:
    return [x * FACTOR for x in numbers]

@step
def total(doubled: list[int]) -> int:
    return sum(doubled)

@step
def other(k: int) -> int:
    return k + 1

FACTOR = 2

@pipeline
def cached(n: int = 5, k: int = 1) -> None:
    total(double(load(n)))
    other(k)

if __name__ == "__main__":
    import json, sys
    run = cached(**json.loads(sys.argv[1]))
    print(json.dumps({sid: s.status for sid, s in run.steps.items()}))
"""


def _run(repo: Path, **params: int) -> dict[str, str]:
    import json

    out = subprocess.run(
        [sys.executable, "cached_pipe.py", json.dumps(params)], cwd=repo, capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_rerun_with_nothing_changed_runs_no_step(repo: Path) -> None:
    write_module(repo, "cached_pipe", PIPE)
    assert set(_run(repo).values()) == {"completed"}
    assert _run(repo) == dict.fromkeys(["load", "double", "total", "other"], "cached")


def test_a_changed_parameter_reruns_exactly_the_affected_steps(repo: Path) -> None:
    write_module(repo, "cached_pipe", PIPE)
    _run(repo)
    assert _run(repo, n=6) == {"load": "completed", "double": "completed", "total": "completed", "other": "cached"}
    assert _run(repo, n=6, k=2) == {"load": "cached", "double": "cached", "total": "cached", "other": "completed"}


def test_changed_step_code_reruns_it_and_its_descendants(repo: Path) -> None:
    write_module(repo, "cached_pipe", PIPE)
    _run(repo)
    # FACTOR is a module global the step reads: it is part of the step's code.
    write_module(repo, "cached_pipe", PIPE.replace("FACTOR = 2", "FACTOR = 3"))
    assert _run(repo) == {"load": "cached", "double": "completed", "total": "completed", "other": "cached"}


def test_changed_helper_code_reruns_the_step_that_calls_it(repo: Path) -> None:
    helper = textwrap.dedent("""
        def scale(x):
            return x * 2
    """)
    write_module(repo, "helpers_mod", helper)
    write_module(
        repo,
        "cached_pipe",
        PIPE.replace("x * FACTOR", "helpers_mod.scale(x)").replace(
            "from conveyor import pipeline, step", "from conveyor import pipeline, step\nimport helpers_mod"
        ),
    )
    _run(repo)
    write_module(repo, "helpers_mod", helper.replace("x * 2", "x * 5"))
    assert _run(repo) == {"load": "cached", "double": "completed", "total": "completed", "other": "cached"}


def test_a_cache_entry_whose_bytes_are_gone_is_not_a_hit(repo: Path) -> None:
    write_module(repo, "cached_pipe", PIPE)
    _run(repo)
    doubled = Client().list_artifacts("doubled")[0]
    shutil.rmtree(doubled.uri)
    statuses = _run(repo)
    assert statuses["double"] == "completed"
    assert statuses["load"] == "cached"
    assert statuses["total"] == "cached"  # same content, so its inputs still hash the same


def test_a_cached_step_points_at_the_original_artifacts(repo: Path) -> None:
    write_module(repo, "cached_pipe", PIPE)
    _run(repo)
    _run(repo)
    first, second = reversed(Client().list_runs("cached"))
    assert second.steps["double"].cached
    assert second.steps["double"].outputs["doubled"].id == first.steps["double"].outputs["doubled"].id
    assert second.steps["double"].inputs["numbers"].id == first.steps["load"].outputs["numbers"].id


def test_cache_off_always_runs(repo: Path, examples_path: Path) -> None:
    import quickstart

    quickstart.quickstart(n=3)
    run = quickstart.quickstart.with_options(enable_cache=False)(n=3)
    assert {s.status for s in run.steps.values()} == {"completed"}
    assert sys.modules["quickstart"] is quickstart
