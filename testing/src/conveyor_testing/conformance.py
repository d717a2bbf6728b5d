"""The conformance suite: the same example pipelines, on any stack, same results.

Each :class:`Case` names a pipeline in ``examples/conformance`` with its
parameters, the statuses its steps must end in, and values some outputs must
load as. :func:`run_case` runs a case on a stack; :func:`artifact_hashes`
gives the content hash of every output so two stacks can be compared byte
for byte. :class:`OrchestratorContract` turns that into the tests every
orchestrator's integration suite inherits.
"""

from __future__ import annotations

import importlib
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

__all__ = [
    "CASES",
    "EXAMPLES",
    "FAILING_STEP_ERROR",
    "REPO_ROOT",
    "Case",
    "OrchestratorContract",
    "artifact_hashes",
    "case",
    "check_run",
    "load_pipeline",
    "run_case",
]

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


FAILING_STEP_ERROR = "ValueError: bad input 3"
"""What the ``explode`` step of the ``failing_step`` case raises, as its traceback's last line says it."""


class OrchestratorContract:
    """The tests every orchestrator owes: each conformance pipeline gives the local stack's artifacts.

    An adapter's integration tests subclass it (the subclass's name starts
    with ``Test``, and it carries the ``integration`` marker and the engine's
    own) and provide one fixture, ``conformance_stack``: the name of a
    registered stack that runs on the engine, in the test's repository
    (the ``repo`` fixture). They inherit:

    * ``test_conformance_case_gives_the_reference_artifacts[<case>]`` for each
      case of :data:`CASES` that succeeds: the run on the engine ends with the
      case's statuses and values (:func:`check_run`), records the stack, and
      its artifacts hash the same as a run of the same case on the reference
      stack (:func:`artifact_hashes`);
    * ``test_failing_step_fails_the_run_and_keeps_its_traceback``: the
      ``failing_step`` case on the engine fails the run, skips the failed
      step's downstream, finishes the independent branch, keeps the step's
      printed output and traceback in its log, records the error on the run,
      and gives the reference stack's artifacts.

    Optional hooks:

    * the ``reference_stack`` fixture: the stack whose run is the reference
      (``"default"``, the local orchestrator; content hashes do not depend on
      the artifact store, so a reference on the engine's store works too);
    * :meth:`run_on_engine`: how a case runs on the engine; by default
      :func:`run_case` (the pipeline called with the stack), override it to
      export and run with the engine's own tools, returning the run view;
    * :meth:`check_engine_run`: the engine's own assertions on each run.

    A minimal adapter test module::

        import pytest
        from conveyor import Client
        from conveyor_testing.conformance import OrchestratorContract

        pytestmark = [pytest.mark.integration, pytest.mark.dagster]


        class TestDagsterConformance(OrchestratorContract):
            @pytest.fixture
            def conformance_stack(self, repo, dagster_home) -> str:
                client = Client()
                client.register_component("orchestrator", "dg", "dagster", {})
                client.register_stack("on_dagster", {"orchestrator": "dg", "artifact_store": "default"})
                return "on_dagster"

            def check_engine_run(self, case, run, reference, request) -> None:
                assert run.orchestrator == "dagster"
    """

    @pytest.fixture(params=[c for c in CASES if not c.fails], ids=lambda c: c.name)
    def conformance_case(self, request: pytest.FixtureRequest) -> Case:
        """Each conformance case whose run succeeds (the failing one has its own test)."""
        return request.param

    @pytest.fixture
    def conformance_stack(self) -> str:
        """The stack that runs on the engine: every subclass provides this fixture."""
        pytest.fail(f"{type(self).__name__} must provide a conformance_stack fixture", pytrace=False)

    @pytest.fixture
    def reference_stack(self) -> str:
        """The stack whose artifacts the engine's must match: the local orchestrator's ``default``."""
        return "default"

    def run_on_engine(self, case: Case, stack: str, request: pytest.FixtureRequest) -> Any:
        """Run ``case`` on the engine's ``stack``; return its run view (also when the run failed).

        ``request`` gives the test's other fixtures (``request.getfixturevalue``).
        """
        return run_case(case, stack=stack)

    def check_engine_run(self, case: Case, run: Any, reference: Any, request: pytest.FixtureRequest) -> None:
        """The engine's own assertions on a run of ``case`` (``reference`` is the reference stack's run)."""

    def _run_both(self, c: Case, stack: str, reference_stack: str, request: pytest.FixtureRequest) -> tuple[Any, Any]:
        reference = run_case(c, stack=reference_stack)
        check_run(c, reference)
        run = self.run_on_engine(c, stack, request)
        check_run(c, run)
        assert run.id != reference.id, "the engine's run is the reference run"
        assert run.stack_name == stack, f"{c.name}: the run recorded stack {run.stack_name!r}, not {stack!r}"
        assert artifact_hashes(run) == artifact_hashes(reference), f"{c.name}: artifacts differ from {reference_stack}"
        self.check_engine_run(c, run, reference, request)
        return run, reference

    def test_conformance_case_gives_the_reference_artifacts(
        self,
        conformance_case: Case,
        repo: Path,
        conformance_stack: str,
        reference_stack: str,
        request: pytest.FixtureRequest,
    ) -> None:
        """Every successful conformance case: same statuses, values and artifact hashes as the reference."""
        self._run_both(conformance_case, conformance_stack, reference_stack, request)

    def test_failing_step_fails_the_run_and_keeps_its_traceback(
        self,
        repo: Path,
        conformance_stack: str,
        reference_stack: str,
        request: pytest.FixtureRequest,
    ) -> None:
        """The failing case: the run fails, downstream is skipped, the log keeps the step's output and traceback."""
        c = case("failing_step")
        run, _ = self._run_both(c, conformance_stack, reference_stack, request)
        assert run.status == "failed"
        assert FAILING_STEP_ERROR.split(": ", 1)[1] in (run.error or ""), f"the run's error: {run.error!r}"
        explode = run.steps["explode"]
        assert explode.outputs == {}
        logs = explode.logs()
        assert "about to fail" in logs and "Traceback" in logs and FAILING_STEP_ERROR in logs, logs
