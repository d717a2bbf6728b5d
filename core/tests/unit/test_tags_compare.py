"""Tags on pipelines and runs, filtering by them, and comparing runs side by side."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conveyor import Client
from conveyor.exceptions import ConfigError, DefinitionError
from tests_support import as_json, fails, ok, write_module

PIPE = """
from typing import Annotated
from conveyor import pipeline, step

@step
def make(n: int) -> Annotated[list[int], "numbers"]:
    return list(range(n))

@step(enable_cache=False)
def scale(numbers: list[int], factor: int = 2) -> int:
    return sum(numbers) * factor

@pipeline(name="tagged", tags=["team-a", "daily"])
def tagged(n: int = 3):
    scale(make(n))
"""


@pytest.fixture
def pipe(repo: Path):
    write_module(repo, "tagged_pipe", PIPE)
    import tagged_pipe

    return tagged_pipe.tagged


def test_runs_start_with_their_pipelines_tags_and_take_more(pipe) -> None:
    first = pipe()
    assert first.tags == ("daily", "team-a")
    second = pipe.with_options(tags=["candidate"])(n=4)
    assert second.tags == ("candidate", "daily", "team-a")
    assert ok("run", "tag", first.name, "baseline", "keep").strip() == (
        f"Run {first.name} tags: baseline, daily, keep, team-a"
    )
    ok("run", "tag", first.id[:6], "keep", "--untag")
    client = Client()
    assert [r.id for r in client.list_runs(tags=["baseline"])] == [first.id]
    assert [r.id for r in client.list_runs(tags="daily")] == [second.id, first.id]
    assert client.list_runs(tags=["baseline", "candidate"]) == []  # every tag must be there
    assert [r["name"] for r in as_json("pipeline", "runs", "--tag", "candidate")] == [second.name]
    assert [r["name"] for r in as_json("pipeline", "runs", "tagged", "-t", "daily", "-t", "baseline")] == [first.name]
    assert "No runs with those tags." in ok("pipeline", "runs", "--tag", "nope")
    assert as_json("run", "describe", first.name)["tags"] == ["baseline", "daily", "team-a"]
    assert "Tags:         baseline, daily, team-a" in ok("run", "describe", first.name)
    assert client.tag_run("latest", remove=["daily", "never-there"]) == ("candidate", "team-a")


def test_tags_in_the_run_config(pipe, repo: Path) -> None:
    config = repo / "run.yaml"
    config.write_text("tags: [from-yaml]\n")
    assert pipe.with_options(config_path=config)().tags == ("daily", "from-yaml", "team-a")


@pytest.fixture
def one_run(pipe):
    return pipe()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tag=st.text(max_size=300) | st.sampled_from(["%", "_", "a%", "x' OR '1'='1", "daily"]))
def test_a_tag_the_naming_rule_refuses_is_one_line_and_stores_nothing(pipe, one_run, tag: str) -> None:
    from conveyor.ir import name_problem

    client = Client()
    if name_problem(tag) is None:
        assert tag in client.tag_run(one_run.id, [tag])
        assert [r.id for r in client.list_runs(tags=[tag])] == [one_run.id]  # wildcards match only themselves
        if tag not in one_run.tags:
            client.tag_run(one_run.id, remove=[tag])
        assert client.get_run(one_run.id).tags == ("daily", "team-a")
        return
    with pytest.raises(ConfigError) as err:
        client.tag_run(one_run.id, [tag])
    assert err.value.message.startswith("tag ") and "\n" not in str(err.value)
    assert client.get_run(one_run.id).tags == ("daily", "team-a")
    with pytest.raises(DefinitionError):
        pipe.with_options(tags=[tag])


def test_tags_must_be_a_list() -> None:
    from conveyor import pipeline

    with pytest.raises(DefinitionError, match="tags must be a list of tags, not the string 'daily'"):
        pipeline(name="p", tags="daily")(lambda: None)


def test_compare_marks_what_differs(pipe) -> None:
    a = pipe()
    b = pipe(n=4)
    c = pipe(n=3)  # the same data as a: make comes from the cache
    data = json.loads(ok("run", "compare", a.name, b.id[:6], "latest", "--json"))
    assert [r["name"] for r in data["runs"]] == [a.name, b.name, c.name]
    assert [r["label"] for r in data["runs"]] == ["A", "B", "C"]
    params = {r["key"]: r for r in data["parameters"]}
    assert params["n"] == {"key": "n", "values": [3, 4, 3], "differs": True}
    outputs = {r["key"]: r for r in data["outputs"]}
    numbers = outputs["make.numbers"]
    assert numbers["differs"] and numbers["values"][0] == numbers["values"][2] != numbers["values"][1]
    assert outputs["scale.output"]["values"][0] == outputs["scale.output"]["values"][2]
    steps = {r["key"]: r for r in data["step_parameters"]}
    assert steps["scale.factor"] == {"key": "scale.factor", "values": [2, 2, 2], "differs": False}
    durations = {r["key"]: r for r in data["durations"]}
    assert durations["make"]["values"][2] == "cached" and not durations["make"]["differs"]
    assert data["metadata"] == []

    text = ok("run", "compare", a.name, c.name)
    assert "No differences." in text
    assert "(none logged)" in text
    text = ok("run", "compare", a.name, b.name)
    assert "4 differences (marked *)." in text  # n, and what it changed: make.n, both outputs
    lines = text.splitlines()
    assert any(line.startswith("*") and " n " in f" {line} " for line in lines)


def test_compare_needs_two_runs_and_names_a_missing_one(pipe) -> None:
    from tests_support import invoke

    a = pipe()
    result = invoke("run", "compare", a.name)
    assert result.exit_code == 2 and "give two runs or more" in result.output
    assert "no run 'ghost'" in fails("run", "compare", a.name, "ghost")


def test_describe_shows_a_step_parameter_the_run_config_set(pipe, repo: Path) -> None:
    config = repo / "run.yaml"
    config.write_text("steps:\n  make:\n    parameters: {n: 7}\n")
    run = pipe.with_options(config_path=config)(n=3)
    described = as_json("run", "describe", run.name)
    assert described["parameters"] == {"n": 3}
    assert {s["step"]: s["parameters"] for s in described["steps"]}["make"] == {"n": 7}
    text = ok("run", "describe", run.name)
    assert "  make: n=7 (the pipeline's n is 3)" in text
    assert "  scale: factor=2" in text


def test_pipelines_are_listed_and_filtered_by_their_tags(pipe, repo: Path) -> None:
    pipe()
    write_module(repo, "plain_pipe", PIPE.replace('name="tagged", tags=["team-a", "daily"]', 'name="plain"'))
    import plain_pipe

    plain_pipe.tagged()
    listed = {p["name"]: p["tags"] for p in as_json("pipeline", "list")}
    assert listed == {"plain": [], "tagged": ["daily", "team-a"]}
    assert [p["name"] for p in as_json("pipeline", "list", "--tag", "daily", "-t", "team-a")] == ["tagged"]
    assert "No pipelines with those tags." in ok("pipeline", "list", "--tag", "nightly")
    assert [p.name for p in Client().list_pipelines(tags="team-a")] == ["tagged"]
