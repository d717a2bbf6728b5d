"""Cleaning up: deleting runs and artifacts, `conveyor gc`, and what is left readable afterwards."""

from __future__ import annotations

from pathlib import Path

import pytest

from conveyor import Client
from conveyor.exceptions import NotFoundError, StoreError
from tests_support import as_json, fails, invoke, ok, write_module

PIPE = """
from typing import Annotated
from conveyor import pipeline, step

@step
def make(n: int) -> Annotated[list[int], "numbers"]:
    print(f"making {n} numbers")
    return list(range(n))

@step(enable_cache=False)
def total(numbers: list[int]) -> int:
    print("adding up")
    return sum(numbers)

@pipeline(name="tidy")
def tidy(n: int = 3):
    total(make(n))
"""


@pytest.fixture
def tidy(repo: Path):
    write_module(repo, "tidy_pipe", PIPE)
    import tidy_pipe

    return tidy_pipe.tidy


def _files(repo: Path) -> set[str]:
    root = repo / ".conveyor" / "artifacts"
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def test_deleting_a_run_keeps_what_later_runs_reuse_and_gc_frees_the_rest(repo: Path, tidy) -> None:
    first = tidy(n=3)
    second = tidy(n=3)  # make comes from the cache: it links first's numbers
    third = tidy(n=4)
    assert second.steps["make"].cached
    made, lonely = first.steps["make"].outputs["numbers"], first.steps["total"].outputs["output"]
    ok("run", "delete", first.name, "-y")
    with pytest.raises(NotFoundError):
        Client().get_run(first.id)
    numbers = Client().get_artifact(made.id)
    assert numbers.producer is None and Path(numbers.uri).is_dir()  # second still uses it
    # The cached step's logs are the first run's, kept for it, and say where they came from.
    result = invoke("run", "describe", second.name, "--logs", "make")
    assert result.stdout == "making 3 numbers\n"
    assert "the run that ran it was deleted; these are the logs it kept" in result.stderr
    # first's own total is used by nobody now: gc frees it, and only it.
    dry = ok("gc", "--dry-run")
    assert f"{lonely.id[:8]}  tidy::total::output v1" in dry and "Would remove the files of 1 artifact (1 B)." in dry
    assert Path(lonely.uri).is_dir()  # a dry run removes nothing
    assert ok("gc", "-y").strip().endswith("Removed the files of 1 artifact (1 B).")
    assert not Path(lonely.uri).exists() and not Path(lonely.uri).parent.exists()  # its run's folder went too
    assert Client().get_artifact(lonely.id).removed is not None  # the record stays, marked
    assert "Would remove the files of 0 artifacts (0 B)." in ok("gc", "--dry-run")
    ok("run", "delete", second.id[:8], third.name, "--yes")
    assert "Would remove the files of 4 artifacts (18 B)." in ok("gc", "-n")
    ok("gc", "-y")
    assert _files(repo) == set()  # nothing of the deleted runs is left on disk
    assert as_json("artifact", "list") == [] and len(as_json("artifact", "list", "--all")) == 5
    # Version numbers are never reused: a new run numbers on from the removed ones.
    fourth = tidy(n=3)
    assert fourth.steps["make"].outputs["numbers"].version == 3 and not fourth.steps["make"].cached


def test_values_saved_by_hand_are_never_garbage(repo: Path, tidy) -> None:
    import conveyor

    saved = conveyor.save_artifact([1, 2], "kept")
    run = tidy()
    ok("run", "delete", run.name, "-y")
    assert "kept" not in ok("gc", "--dry-run")
    ok("gc", "-y")
    assert conveyor.load_artifact("kept") == [1, 2]
    ok("artifact", "delete", saved.id, "-y")
    assert "were removed on" in fails("artifact", "show", saved.id)


def test_artifact_delete_refuses_what_a_kept_run_needs_unless_forced(repo: Path, tidy) -> None:
    run = tidy()
    numbers = run.steps["make"].outputs["numbers"]
    error = fails("artifact", "delete", numbers.id, "-y")
    assert f"artifact tidy::make::numbers v1 is used by run {run.name}" in error
    assert "conveyor run delete" in error and "--force" in error
    result = invoke("artifact", "delete", numbers.id, input="y\n")  # refused before it asks
    assert result.exit_code == 1 and "Remove the files" not in result.output and "is used by run" in result.stderr
    assert Path(numbers.uri).is_dir()
    ok("artifact", "delete", numbers.id[:6], "--force", "-y")
    assert not Path(numbers.uri).exists()
    # The run keeps its record; reading the artifact says what happened, in one line.
    error = fails("artifact", "show", numbers.id)
    assert "the files of artifact tidy::make::numbers v1 were removed on" in error
    with pytest.raises(StoreError, match="were removed on"):
        Client().get_artifact(numbers.id).load()
    assert as_json("run", "describe", run.name)["steps"][0]["outputs"]["numbers"]["id"] == numbers.id
    # A removed artifact is no cache hit: the step runs again.
    assert not tidy().steps["make"].cached


def test_artifact_show_of_files_gone_by_hand_is_one_line(repo: Path, tidy) -> None:
    import shutil

    run = tidy()
    total = run.steps["total"].outputs["output"]
    (Path(total.uri) / "data.json").unlink()
    assert f"artifact tidy::total::output v1 lost 'data.json' from {total.uri}" in fails("artifact", "show", total.id)
    shutil.rmtree(total.uri)
    assert "are gone from" in fails("artifact", "show", total.id)


def test_deleting_asks_first_and_refuses_a_running_run(repo: Path, tidy) -> None:
    run = tidy()
    result = invoke("run", "delete", run.name, input="n\n")
    assert result.exit_code == 1 and "Delete 1 run" in result.output
    assert Client().get_run(run.id)
    Client().store.update_run(run.id, status="running")
    assert "is running" in fails("run", "delete", run.name, "-y")
    ok("run", "delete", run.name, "-y", "--force")
    assert "no run" in fails("run", "describe", run.id)
    assert "no run 'nope'" in fails("run", "delete", "nope", "-y")
