"""Secrets on a prefect stack: flow runs, the export and the server's deployment keep references, never values."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from conveyor import Client, Schedule, deploy_pipeline, export_pipeline, get_step_context, pipeline, step
from conveyor.secrets import ENV_SECRETS_KEY, ENV_SECRETS_KEY_FILE, ENV_SECRETS_OWNER
from conveyor_testing.leaks import find_value

pytestmark = [pytest.mark.integration, pytest.mark.prefect]

TOKEN = "pf-5a1e-uNiQuE-step-token-8c37"


@step(secrets=["app"])
def context_length() -> int:
    return len(get_step_context().get_secret("app")["token"])


@step(secrets=["app"], environment={"TOKEN": "{{app.token}}"})
def env_length(previous: int) -> int:
    assert os.environ["TOKEN"] == get_step_context().get_secret("app")["token"]
    return previous + len(os.environ["TOKEN"])


@pipeline(enable_cache=False)
def uses_app_secret() -> None:
    env_length(context_length())


@pytest.fixture(autouse=True)
def _no_secret_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (ENV_SECRETS_KEY, ENV_SECRETS_KEY_FILE, ENV_SECRETS_OWNER):
        monkeypatch.delenv(name, raising=False)


def _deployment_json(url: str, name: str) -> str:
    from prefect.client.orchestration import get_client

    from conveyor_prefect._orchestrator import prefect_api

    with prefect_api(url), get_client(sync_client=True) as client:
        return json.dumps(client.read_deployment_by_name(name).model_dump(mode="json"))


def test_runs_export_and_deployment_hold_no_secret_value(repo: Path, prefect_server: Any, tmp_path: Path) -> None:
    # Imported here: step processes import this module without the tests folder on their path.
    from prefect_test_support import register_prefect_stack

    Client().create_secret("app", {"token": TOKEN})
    for mode in ("in_process", "subprocess"):
        stack = register_prefect_stack(
            f"pf_{mode}", api_url=prefect_server.url, step_mode=mode, activate=False, work_pool="conveyor-secrets"
        )
        run = uses_app_secret.with_options(stack=stack)()
        assert run.status == "completed" and run.orchestrator == "prefect"
        assert run.steps["env_length"].output.load() == 2 * len(TOKEN)

    [path] = export_pipeline(uses_app_secret, tmp_path / "exported", stack="pf_in_process")
    assert path.name == "uses_app_secret.prefect.json"
    # The export names the stored deployment, whose IR keeps the reference (resolved only when the step runs).
    deployment_id = json.loads(path.read_text())["deployment_id"]
    assert "{{app.token}}" in Client().store.get_deployment_json(deployment_id)
    assert (
        deploy_pipeline(uses_app_secret, stack="pf_in_process", schedule=Schedule(cron="0 0 1 1 *")).status
        == "deployed"
    )
    deployment = _deployment_json(prefect_server.url, "uses_app_secret/uses_app_secret")
    assert "uses_app_secret" in deployment
    assert TOKEN not in deployment and json.dumps(TOKEN)[1:-1] not in deployment

    # The repository (database, artifacts, logs), the export, and the Prefect server's
    # home (its database holds the flow runs, task runs and their logs).
    assert find_value([repo, tmp_path / "exported", prefect_server.home], TOKEN) == []
