"""Real Dagster for the integration tests.

``dagster_home``: a DAGSTER_HOME in a temp folder (telemetry off), set for the
whole session, so every run this process executes is recorded in one Dagster
instance. ``dagster_stack``: a stack whose orchestrator is ``dagster`` in
python mode.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conveyor import Client


@pytest.fixture(scope="session")
def dagster_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """This session's Dagster instance: a temp DAGSTER_HOME with telemetry off."""
    home = tmp_path_factory.mktemp("dagster-home")
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DAGSTER_HOME", str(home))
        yield home


@pytest.fixture
def dagster_stack(repo: Path, dagster_home: Path) -> str:
    """A stack whose orchestrator runs pipelines with Dagster (python mode), active in ``repo``."""
    client = Client()
    client.register_component("orchestrator", "dg", "dagster", {"max_concurrent": 4})
    client.register_stack("on_dagster", {"orchestrator": "dg", "artifact_store": "default"})
    return "on_dagster"


@pytest.fixture
def instance(dagster_home: Path) -> Iterator[Any]:
    """The session's Dagster instance, to read back runs."""
    import dagster as dg

    with dg.DagsterInstance.get() as found:
        yield found


# -- docker mode ---------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def built_images(docker_daemon: Any) -> Iterator[None]:
    """Remove the images this session's builds made (the builder labels them)."""
    import docker

    before = set(docker_daemon.api.images(all=True, quiet=True))
    yield
    for summary in docker_daemon.api.images(filters={"label": "conveyor.image"}):
        if summary["Id"] in before:
            continue
        for tag in summary.get("RepoTags") or []:
            try:
                docker_daemon.images.remove(tag)
            except docker.errors.APIError:
                pass
