"""The conformance suite on the local orchestrator in process mode: each step in a process of its own."""

from __future__ import annotations

from pathlib import Path

import pytest

from conveyor import Client
from conveyor_testing.conformance import OrchestratorContract

pytestmark = [pytest.mark.integration, pytest.mark.server]


class TestLocalProcessModeConformance(OrchestratorContract):
    """Every conformance case with ``local`` in process mode, and a run through a conveyor server."""

    @pytest.fixture
    def conformance_stack(self, repo: Path, examples_path: Path) -> str:
        client = Client()
        client.register_component("orchestrator", "procs", "local", {"mode": "process"})
        client.register_stack("procs", {"orchestrator": "procs", "artifact_store": "default"})
        return "procs"

    def check_engine_run(self, case: object, run: object, reference: object, request: pytest.FixtureRequest) -> None:
        assert run.orchestrator == "local"
