"""Finding things: id prefixes, `latest`, artifact names and filters, artifacts saved by hand, 80-column tables."""

from __future__ import annotations

import os
import pty
import re
import select
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conveyor import Client
from conveyor.exceptions import AmbiguousIdError, ConfigError, NotFoundError
from tests_support import as_json, fails, ok, write_module

TWO = """
from typing import Annotated
from conveyor import ArtifactConfig, pipeline, step

@step
def fit(n: int) -> Annotated[list[int], "model"]:
    return list(range(n))

@step
def publish(model: list[int]) -> Annotated[list[int], ArtifactConfig(name="champion")]:
    return model[::-1]

@step
def size(model: list[int]) -> int:
    return len(model)

@pipeline(name="train")
def train(n: int = 3):
    m = fit(n)
    publish(m)
    size(m)

@pipeline(name="retrain")
def retrain(n: int = 5):
    publish(fit(n))
"""


@pytest.fixture
def two(repo: Path):
    write_module(repo, "two_pipes", TWO)
    import two_pipes

    return two_pipes


def test_runs_are_found_by_name_id_prefix_and_latest(two) -> None:
    first = two.train()
    second = two.train(n=4)
    client = Client()
    assert client.get_run("latest").id == second.id
    assert client.get_run(first.id[:6]).id == first.id
    assert client.get_run(first.id.upper()[:8]).id == first.id  # case does not matter
    assert client.get_run(first.name).id == first.id
    assert as_json("run", "describe", "latest")["id"] == second.id
    assert as_json("run", "describe", first.id[:5])["name"] == first.name
    # Step runs and artifacts follow the same rule.
    step = first.steps["fit"]
    assert client.store.get_step_run(step.id[:7]).id == step.id
    artifact = step.outputs["model"]
    assert client.get_artifact(artifact.id[:4]).id == artifact.id
    assert "Artifact:" in ok("artifact", "describe", artifact.id[:6])


@pytest.mark.sql_store(
    "it makes this process's SQL store give two runs ids with one prefix; a server makes its own ids"
)
def test_a_prefix_that_fits_several_or_none_is_one_line(two, monkeypatch: pytest.MonkeyPatch) -> None:
    from conveyor.stores import new_id

    ids = iter(["abcd1111" + "0" * 24, "abcd2222" + "0" * 24])
    monkeypatch.setattr("conveyor.stores.sql._runs.new_id", lambda: next(ids, new_id()))
    two.train()
    two.train(n=2)
    with pytest.raises(AmbiguousIdError, match=r"the id prefix 'abcd' fits more than one run \(abcd1111, abcd2222\)"):
        Client().get_run("abcd")
    assert Client().get_run("abcd2").id.startswith("abcd2222")
    error = fails("run", "describe", "abcd")
    assert "fits more than one run" in error and "give more of the id" in error
    assert "no run 'abc'" in fails("run", "describe", "abc") and "at least 4 characters" in fails(
        "run", "describe", "abc"
    )
    assert "no run 'ffff'" in fails("run", "describe", "ffff")


@pytest.fixture
def one_run(two):
    return two.train()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ref=st.text(max_size=40) | st.sampled_from(["%", "_", "%%%%", "____", "latest", "::model", "' OR 1=1 --"]))
def test_hostile_references_find_nothing_and_break_nothing(one_run, ref: str) -> None:
    client = Client()
    for lookup in (client.get_run, client.get_artifact, client.store.get_step_run):
        try:
            found = lookup(ref)
        except (NotFoundError, AmbiguousIdError) as exc:
            assert "\n" not in str(exc)
            continue
        # Only a real name, id or prefix of one finds something.
        assert ref == "latest" or found.id.startswith(ref.strip().lower()) or getattr(found, "name", None) == ref
    for artifact in client.list_artifacts(ref):
        assert artifact.name == ref or artifact.name.endswith(f"::{ref}")  # LIKE wildcards are plain characters


def test_latest_with_no_runs_and_the_reserved_run_name(repo: Path, two) -> None:
    assert "there are no runs yet" in fails("run", "describe", "latest")
    with pytest.raises(ConfigError, match="run name 'latest' is reserved"):
        two.train.with_options(run_name="latest")()


def test_outputs_are_versioned_per_pipeline_step_and_output_unless_named_on_purpose(two) -> None:
    two.train()
    two.train(n=4)
    two.retrain()
    names = {(a.name, a.version) for a in Client().list_artifacts()}
    # Two pipelines' "model" outputs have a sequence each; the step's other output too.
    assert ("train::fit::model", 2) in names and ("retrain::fit::model", 1) in names
    assert ("train::size::output", 2) in names
    # Named with ArtifactConfig: one sequence across both pipelines.
    assert sorted(v for n, v in names if n == "champion") == [1, 2, 3]
    client = Client()
    assert client.get_artifact_version("champion").load() == [4, 3, 2, 1, 0]
    assert client.get_artifact_version("champion", 1).load() == [2, 1, 0]
    assert client.get_artifact_version("train::fit::model").version == 2
    with pytest.raises(AmbiguousIdError, match="2 artifacts have an output named 'model': retrain::fit::model, train"):
        client.get_artifact_version("model")
    assert client.get_artifact_version("output").load() == 4  # one scoped name ends with it: train::size::output
    with pytest.raises(NotFoundError, match="artifact 'champion' has no version 9"):
        client.get_artifact_version("champion", 9)
    with pytest.raises(NotFoundError, match="no artifact named 'nope'"):
        client.get_artifact_version("nope")


def test_artifact_list_filters_limits_and_shows_who_made_each(two) -> None:
    two.train()
    two.retrain()
    everything = as_json("artifact", "list")
    assert {(a["pipeline"], a["step"]) for a in everything} == {
        ("train", "fit"),
        ("train", "publish"),
        ("train", "size"),
        ("retrain", "fit"),
        ("retrain", "publish"),
    }
    assert [a["name"] for a in as_json("artifact", "list", "--pipeline", "retrain", "--step", "fit")] == [
        "retrain::fit::model"
    ]
    assert {a["name"] for a in as_json("artifact", "list", "--name", "model")} == {
        "train::fit::model",
        "retrain::fit::model",
    }
    assert len(as_json("artifact", "list", "-n", "2")) == 2
    assert as_json("artifact", "list", "--name", "m_del") == []  # "_" is a name character, not a wildcard
    text = ok("artifact", "list", "-P", "train")
    assert re.search(r"^\w{8}\s+model\s+1\s+train\s+fit\s+list\s", text, re.M), text
    assert "No artifacts match." in ok("artifact", "list", "--step", "nope")


def test_values_saved_outside_a_pipeline_are_versioned_and_loaded(repo: Path) -> None:
    import conveyor

    first = conveyor.save_artifact({"threshold": 0.5}, "config")
    second = conveyor.save_artifact({"threshold": 0.7}, "config")
    assert (first.version, second.version) == (1, 2)
    assert first.pipeline_name is None and first.producer is None
    assert conveyor.load_artifact("config") == {"threshold": 0.7}
    assert conveyor.load_artifact("config", version=1) == {"threshold": 0.5}
    assert conveyor.load_artifact(first.id[:8]) == {"threshold": 0.5}
    assert Path(second.uri).parent.name == "config" and ".saved" in Path(second.uri).parts
    with pytest.raises(ConfigError, match="artifact name '../x' starts with"):
        conveyor.save_artifact(1, "../x")
    with pytest.raises(NotFoundError, match="no artifact named 'missing'"):
        conveyor.load_artifact("missing")


def test_save_artifact_inside_a_step_points_to_outputs(repo: Path) -> None:
    write_module(
        repo,
        "saver",
        "from conveyor import pipeline, save_artifact, step\n"
        "@step\n"
        "def keep() -> int:\n"
        "    save_artifact(1, 'inside')\n"
        "    return 1\n"
        "@pipeline(name='saver')\n"
        "def saver():\n"
        "    keep()\n",
    )
    import saver

    from conveyor.exceptions import StepFailedError

    with pytest.raises(StepFailedError, match="save_artifact.. is for values made outside a pipeline"):
        saver.saver()


def _in_a_terminal(repo: Path, *args: str, columns: int = 80) -> str:
    """Run ``conveyor ARGS`` on a pseudo-terminal ``columns`` wide; returns what it printed, colours removed."""
    import fcntl
    import struct
    import termios

    pid, fd = pty.fork()
    if pid == 0:
        fcntl.ioctl(1, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
        os.chdir(repo)
        env = {**os.environ, "CONVEYOR_REPOSITORY": str(repo), "TERM": "xterm"}
        env.pop("COLUMNS", None)
        os.execve(sys.executable, [sys.executable, "-m", "conveyor.cli", *args], env)
    output = b""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 1)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            output += chunk
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", output.decode(errors="replace")).replace("\r", "")
    assert os.waitstatus_to_exitcode(status) == 0, text
    return text


def test_tables_fit_an_80_column_terminal(two, repo: Path) -> None:
    run = two.train.with_options(tags=["nightly", "baseline"])()
    two.retrain()
    for args in (
        ["pipeline", "runs"],
        ["pipeline", "list"],
        ["run", "describe", run.name],
        ["artifact", "list"],
        ["stack", "list"],
        ["orchestrator", "list"],
        ["orchestrator", "flavor", "list"],
        ["run", "compare", run.id[:8], "latest"],
    ):
        text = _in_a_terminal(repo, *args)
        too_wide = [line for line in text.splitlines() if len(line) > 80]
        assert too_wide == [], (args, too_wide)
    runs = _in_a_terminal(repo, "pipeline", "runs")
    assert run.id[:8] in runs and "completed" in runs and "nightly" in runs
    artifacts = _in_a_terminal(repo, "artifact", "list")
    fit = run.steps["fit"].outputs["model"]
    assert re.search(rf"{fit.id[:8]}\s+model\s+1\s+train\s+fit", artifacts), artifacts
