"""Pipelines run as bash scripts: every conformance case gives the local orchestrator's artifacts.

A real engine's tests carry its marker too (``pytest.mark.<engine>``, registered in
the root ``pyproject.toml``) and start its server in a fixture (``conveyor_testing.processes``).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from conveyor import Client, export_pipeline
from conveyor.exceptions import StepFailedError
from conveyor_testing.conformance import (
    OrchestratorContract,
    artifact_hashes,
    case,
    check_run,
    load_pipeline,
    run_case,
)

pytestmark = [pytest.mark.integration]


@pytest.fixture
def template_stack(repo: Path) -> str:
    """A stack whose orchestrator is ``template``, in the test's repository."""
    client = Client()
    client.register_component("orchestrator", "sh", "template", {})
    client.register_stack("on_template", {"orchestrator": "sh", "artifact_store": "default"})
    return "on_template"


class TestTemplateConformance(OrchestratorContract):
    """Every conformance case run by the orchestrator (``run`` writes the script, runs it and waits)."""

    @pytest.fixture
    def conformance_stack(self, template_stack: str) -> str:
        return template_stack

    def check_engine_run(self, case: Any, run: Any, reference: Any, request: pytest.FixtureRequest) -> None:
        assert run.orchestrator == "template"
        assert run.orchestrator_run_id is not None and len(run.orchestrator_run_id) == 32


def test_an_exported_script_run_by_bash_gives_the_local_artifacts(template_stack: str, tmp_path: Path) -> None:
    # Nothing of conveyor watches this run: the steps join it, the finish command settles it.
    c = case("fan_out")
    reference = run_case(c, stack="default")
    pipe = load_pipeline(c).with_options(enable_cache=False)
    [script] = export_pipeline(pipe, tmp_path / "scripts", stack=template_stack, parameters=c.params)
    env = {k: v for k, v in os.environ.items() if k not in ("CONVEYOR_STORE_URL", "CONVEYOR_SOURCE_ROOT")}
    done = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    run = Client().get_pipeline(c.pipeline).last_run
    check_run(c, run)
    assert artifact_hashes(run) == artifact_hashes(reference)
    assert run.orchestrator == "template" and run.stack_name == template_stack


def test_a_failing_step_fails_the_run_with_one_line(template_stack: str) -> None:
    pipe = load_pipeline(case("failing_step")).with_options(enable_cache=False, stack=template_stack)
    with pytest.raises(StepFailedError) as info:
        pipe()
    message = str(info.value)
    assert "\n" not in message and "'explode'" in message and "bad input 3" in message
