"""``log_metadata`` from inside a step: kept with the step run and its outputs, shown and compared."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conveyor import Client, log_metadata
from conveyor.exceptions import ConveyorError, MetadataError
from conveyor.runtime import MAX_METADATA_BYTES, StepContext
from tests_support import as_json, ok, write_module

PIPE = """
from typing import Annotated
from conveyor import log_metadata, pipeline, step

@step
def fit(n: int) -> Annotated[list[int], "model"]:
    log_metadata({"accuracy": 0.5 + n / 100, "rows": n})
    log_metadata({"notes": {"kind": "toy", "layers": [n, 2]}, "rows": n * 10})  # a key logged again: the last
    return list(range(n))

@step(enable_cache=False)
def check(model: list[int], fail: bool = False) -> int:
    log_metadata({"checked": len(model)})
    if fail:
        raise ValueError("the model is no good")
    return len(model)

@pipeline(name="logged")
def logged(n: int = 3, fail: bool = False):
    check(fit(n), fail)
"""


@pytest.fixture
def pipe(repo: Path):
    write_module(repo, "logged_pipe", PIPE)
    import logged_pipe

    return logged_pipe.logged


@pytest.fixture
def process_stack(repo: Path) -> str:
    client = Client()
    client.register_component("orchestrator", "processes", "local", {"mode": "process"})
    client.register_stack("processes", {"orchestrator": "processes", "artifact_store": "default"})
    return "processes"


@pytest.mark.parametrize("mode", ["thread", "process"])
def test_logged_metadata_is_kept_with_the_step_run_and_its_outputs(pipe, mode: str, request) -> None:
    runner = pipe.with_options(stack=request.getfixturevalue("process_stack")) if mode == "process" else pipe
    run = runner(n=4)
    fit = run.steps["fit"]
    expected = {"accuracy": 0.54, "rows": 40, "notes": {"kind": "toy", "layers": [4, 2]}}
    assert fit.metadata == expected
    assert run.steps["check"].metadata == {"checked": 4}
    model = fit.outputs["model"]
    assert {k: model.metadata[k] for k in expected} == expected
    assert Client().get_artifact(model.id[:8]).metadata["rows"] == 40

    described = as_json("run", "describe", run.name)
    assert {s["step"]: s["metadata"] for s in described["steps"]} == {"fit": expected, "check": {"checked": 4}}
    text = ok("run", "describe", run.name)
    assert "Logged metadata" in text
    assert '  fit: accuracy=0.54, notes={"kind": "toy", "layers": [4, 2]}, rows=40' in text
    assert "rows: 40" in ok("artifact", "describe", model.id)


def test_a_cached_step_shows_what_it_logged_when_it_ran_and_compare_marks_differences(pipe) -> None:
    a = pipe(n=3)
    b = pipe(n=5)
    c = pipe(n=3)
    assert c.steps["fit"].cached and c.steps["fit"].metadata == a.steps["fit"].metadata
    data = json.loads(ok("run", "compare", a.name, b.name, c.name, "--json"))
    rows = {r["key"]: r for r in data["metadata"]}
    assert rows["fit.accuracy"] == {"key": "fit.accuracy", "values": [0.53, 0.55, 0.53], "differs": True}
    assert rows["fit.rows"]["values"] == [30, 50, 30]
    assert rows["check.checked"]["values"] == [3, 5, 3]
    text = ok("run", "compare", a.name, c.name)
    assert "fit.accuracy" in text and "No differences." in text


def test_a_failed_step_keeps_what_it_logged(pipe) -> None:
    with pytest.raises(ConveyorError):
        pipe(n=2, fail=True)
    run = Client().get_run("latest")
    assert run.steps["check"].status == "failed"
    assert run.steps["check"].metadata == {"checked": 2}


def test_outside_a_step_it_says_so() -> None:
    with pytest.raises(ConveyorError, match="only inside a running step"):
        log_metadata({"a": 1})


def _context() -> StepContext:
    return StepContext(pipeline_name="p", run_id="r", run_name="r", step_id="s", step_name="s", attempt=1)


def test_too_much_metadata_is_refused_whole() -> None:
    ctx = _context()
    ctx.log_metadata({"small": 1})
    with pytest.raises(MetadataError, match=f"at most {MAX_METADATA_BYTES} fit"):
        ctx.log_metadata({"big": "x" * MAX_METADATA_BYTES})
    assert ctx.logged_metadata == {"small": 1}


_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=20)
    | st.sampled_from(["\ud800", "a\udfff", 2**63, -(2**63) - 1, "\x00"])
)
_VALUES = st.recursive(
    _SCALARS | st.binary(max_size=4) | st.sets(st.integers(), max_size=2),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8) | st.integers(), inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=200, deadline=None)
@given(metadata=st.dictionaries(st.text(max_size=300) | st.integers(), _VALUES, max_size=4) | _VALUES)
def test_hostile_metadata_is_stored_as_plain_json_or_refused_in_one_line(metadata) -> None:
    ctx = _context()
    try:
        ctx.log_metadata(metadata)
    except MetadataError as err:
        assert "\n" not in str(err) and ctx.logged_metadata == {}
        return
    # What was accepted is exactly what JSON keeps: it reads back the same from any store.
    text = json.dumps(ctx.logged_metadata, allow_nan=False, ensure_ascii=False)
    text.encode("utf-8")
    assert json.loads(text) == ctx.logged_metadata
    assert all(isinstance(k, str) and k.isprintable() for k in ctx.logged_metadata)
    assert not any(isinstance(v, float) and not math.isfinite(v) for v in ctx.logged_metadata.values())


def test_hostile_values_survive_a_run(repo: Path) -> None:
    write_module(
        repo,
        "odd_pipe",
        """
from conveyor import log_metadata, pipeline, step

@step
def odd() -> int:
    log_metadata({"quote'); DROP TABLE step_runs; --": "\\u0001\\ud7ff \\u2028", "e": 1e308, "big": 2**62})
    return 1

@pipeline(name="odd")
def odd_pipe():
    odd()
""",
    )
    import odd_pipe

    run = odd_pipe.odd_pipe()
    assert Client().get_run(run.id).steps["odd"].metadata == {
        "quote'); DROP TABLE step_runs; --": "\u0001\ud7ff \u2028",
        "e": 1e308,
        "big": 2**62,
    }
