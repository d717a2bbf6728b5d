"""Pipelines run by real Dagster: the same artifacts as the local orchestrator, parallel ops, failures settled."""

from __future__ import annotations

from typing import Any

import pytest

from conveyor_testing.conformance import CASES, artifact_hashes, check_run, run_case

pytestmark = [pytest.mark.integration, pytest.mark.dagster]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_conformance(case: Any, dagster_stack: str, instance: Any) -> None:
    local = run_case(case, stack="default")
    run = run_case(case, stack=dagster_stack)
    check_run(case, run)
    assert artifact_hashes(run) == artifact_hashes(local)
    assert run.record.orchestrator == "dagster"
    dagster_run = instance.get_run_by_id(run.record.orchestrator_run_id)
    assert dagster_run is not None and dagster_run.is_success != case.fails
