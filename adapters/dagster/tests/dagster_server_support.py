"""Running a conformance case through a conveyor server on Dagster, as a code location with a runner key would.

A module name unique across the repository's test suites, so that suites can share a pytest process.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

DAGSTER = str(Path(sys.executable).parent / "dagster")


def run_case_through_server(case: Any, stack: str, request: pytest.FixtureRequest, runner_key: str) -> Any:
    """Export the case's definitions file with this process's credential, then ``dagster job execute`` it in a
    process that holds only the server's URL and ``runner_key`` (the Dagster side of a team). Returns the run."""
    from conveyor import Client, export_pipeline
    from conveyor_testing.conformance import load_pipeline

    repo: Path = request.getfixturevalue("repo")
    home: Path = request.getfixturevalue("dagster_home")
    pipe = load_pipeline(case).with_options(enable_cache=False)
    [path] = export_pipeline(pipe, repo / "definitions", stack=stack, parameters=case.params)
    env = {**os.environ, "DAGSTER_HOME": str(home), "CONVEYOR_API_KEY": runner_key}
    done = subprocess.run(
        [DAGSTER, "job", "execute", "-f", str(path)],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
        cwd=repo,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return Client().get_pipeline(pipe.name).last_run


def dagster_surfaces(request: pytest.FixtureRequest) -> list[Any]:
    """What Dagster kept: the repository (the definitions file) and its home (run storage, event logs, compute logs)."""
    return [request.getfixturevalue("repo"), request.getfixturevalue("dagster_home")]
