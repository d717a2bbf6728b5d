"""Secrets on an airflow stack: the exported DAG and everything in the repository keep references, never values."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from conveyor import Client, export_pipeline, get_step_context, pipeline, step
from conveyor.secrets import ENV_SECRETS_KEY, ENV_SECRETS_KEY_FILE, ENV_SECRETS_OWNER
from conveyor_testing.leaks import find_value

TOKEN = "af-7e2c-uNiQuE-step-token-51d0"
PASSWORD = "af-9b4a-uNiQuE-api-password-c3e8"


@step(secrets=["app"], environment={"TOKEN": "{{app.token}}"})
def token_length() -> int:
    token = get_step_context().get_secret("app")["token"]
    assert os.environ["TOKEN"] == token
    return len(token)


@pipeline(enable_cache=False)
def uses_app_secret() -> None:
    token_length()


@pytest.fixture(autouse=True)
def _no_secret_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (ENV_SECRETS_KEY, ENV_SECRETS_KEY_FILE, ENV_SECRETS_OWNER):
        monkeypatch.delenv(name, raising=False)


def test_dags_and_repository_hold_no_secret_value(repo: Path, tmp_path: Path) -> None:
    client = Client()
    client.create_secret("app", {"token": TOKEN})
    client.create_secret("af_api", {"password": PASSWORD})
    dags = tmp_path / "dags"
    dags.mkdir()
    client.register_component(
        "orchestrator",
        "af",
        "airflow",
        {
            "dags_folder": str(dags),
            "api_password": "{{af_api.password}}",
            "python": sys.executable,
        },
    )
    client.register_stack("on_airflow", {"orchestrator": "af", "artifact_store": "default"})

    # The same pipeline, run on the local stack (artifacts, logs, run records) and
    # sent to airflow (no API configured: the DAG is written into the dags folder).
    run = uses_app_secret.with_options(stack="default")()
    assert run.status == "completed" and run.steps["token_length"].output.load() == len(TOKEN)
    assert uses_app_secret.with_options(stack="on_airflow")().status == "deployed"
    exported = export_pipeline(uses_app_secret, tmp_path / "exported", stack="on_airflow")
    dag_files = [dags / "uses_app_secret.py", *exported]
    assert all(p.is_file() for p in dag_files)

    for value in (TOKEN, PASSWORD):
        assert find_value([dags, tmp_path / "exported", repo], value) == []
    for path in dag_files:
        source = path.read_text()
        assert "{{app.token}}" in source  # the step's environment, resolved only in the task
        assert "af_api" not in source  # the API password is the submitter's, not the DAG's
    # The stored orchestrator config keeps the reference.
    assert client.store.get_component("orchestrator", "af").config["api_password"] == "{{af_api.password}}"
