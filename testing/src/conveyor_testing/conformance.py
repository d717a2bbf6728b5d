"""The conformance suite: the same example pipelines, on any stack, same results.

Each :class:`Case` names a pipeline in ``examples/conformance`` with its
parameters, the statuses its steps must end in, and values some outputs must
load as. :func:`run_case` runs a case on a stack; :func:`artifact_hashes`
gives the content hash of every output so two stacks can be compared byte
for byte.
"""

from __future__ import annotations

import importlib
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = REPO_ROOT / "examples" / "conformance"


@dataclass(frozen=True)
class Case:
    """One conformance pipeline run."""

    name: str
    module: str
    pipeline: str
    params: dict[str, Any] = field(default_factory=dict)
    statuses: dict[str, str] = field(default_factory=dict)
    """``{step id: final status}`` for every step."""
    expected: dict[str, Any] = field(default_factory=dict)
    """``{"step.output": value}`` that outputs must load as."""
    fails: bool = False


def _sum_sq(values: list[float]) -> float:
    return sum(v * v for v in values)


_FAN_VALUES = [i / 4 for i in range(12)]
_BRANCHES = [_sum_sq(_FAN_VALUES[i::4]) for i in range(4)]

CASES: list[Case] = [
    Case(
        name="quickstart",
        module="quickstart",
        pipeline="quickstart",
        params={"n": 20},
        statuses=dict.fromkeys(("load_data", "split", "total", "total_2"), "completed"),
        expected={
            "load_data.numbers": list(range(20)),
            "split.even": list(range(0, 20, 2)),
            "split.odd": list(range(1, 20, 2)),
            "total.output": 90,
            "total_2.output": 100,
        },
    ),
    Case(
        name="fan_out",
        module="fan_out",
        pipeline="fan_out",
        params={"width": 4},
        statuses=dict.fromkeys(
            ("source", "branch", "branch_2", "branch_3", "branch_4", "join", "announce"), "completed"
        ),
        expected={
            "source.values": _FAN_VALUES,
            "branch_3.output": _BRANCHES[2],
            "join.summary": {"total": sum(_BRANCHES), "largest": max(_BRANCHES)},
            "announce.note": "join finished",
        },
    ),
    Case(
        name="rich_outputs",
        module="rich_outputs",
        pipeline="rich_outputs",
        params={"seed": 5},
        statuses={"make": "completed", "describe": "completed"},
        expected={
            "make.counts": {"k0": 0, "k1": 5, "k2": 3, "k3": 1, "k4": 6},
            "make.record": (5, "row", 5 / 3),
            "make.tags": {"alpha", "beta", "s5"},
            "make.blob": bytes(range(5)) + b"\x00\xff",
            "make.nothing": None,
            "describe.output": "5 counts, tags=['alpha', 'beta', 's5'], record=(5, 'row', 1.6666666666666667)",
        },
    ),
    Case(
        name="pydantic_param",
        module="pydantic_param",
        pipeline="pydantic_param",
        params={},
        statuses={"data_points": "completed", "train": "completed"},
        expected={"data_points.output": [1.0, 2.0, 3.0, 4.0, 5.0]},
    ),
    Case(
        name="failing_step",
        module="failing_step",
        pipeline="failing_step",
        statuses={"start": "completed", "explode": "failed", "after_explode": "skipped", "independent": "completed"},
        expected={"start.output": 3, "independent.output": 6},
        fails=True,
    ),
]


def case(name: str) -> Case:
    """The case of this name."""
    return next(c for c in CASES if c.name == name)


def load_pipeline(c: Case) -> Any:
    """Import the case's pipeline object from ``examples/conformance``."""
    if str(EXAMPLES) not in sys.path:
        sys.path.insert(0, str(EXAMPLES))
    return getattr(importlib.import_module(c.module), c.pipeline)


def run_case(c: Case, stack: str | None = None, **options: Any) -> Any:
    """Run a case (cache off) on a stack; returns the run view, also when it failed."""
    from conveyor import Client
    from conveyor.exceptions import StepFailedError

    pipe = load_pipeline(c).with_options(enable_cache=False, stack=stack, **options)
    try:
        run = pipe(**c.params)
    except StepFailedError:
        if not c.fails:
            raise
        return Client().get_pipeline(pipe.name).last_run
    if c.fails:
        raise AssertionError(f"case {c.name} should have failed but its run ended {run.status}")
    return run


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    return a == b and type(a) is type(b)


def check_run(c: Case, run: Any) -> None:
    """Assert statuses and expected values of a case's run."""
    statuses = {sid: s.status for sid, s in run.steps.items()}
    assert statuses == c.statuses, f"{c.name}: statuses {statuses} != {c.statuses}"
    assert run.status == ("failed" if c.fails else "completed"), f"{c.name}: run ended {run.status}"
    for key, value in c.expected.items():
        step_id, output = key.split(".")
        loaded = run.steps[step_id].outputs[output].load()
        assert _same(loaded, value), f"{c.name}: {key} loaded {loaded!r}, expected {value!r}"


def artifact_hashes(run: Any) -> dict[str, str]:
    """``{"step.output": content hash}`` of every output of a run."""
    return {f"{sid}.{name}": art.content_hash for sid, step in run.steps.items() for name, art in step.outputs.items()}
