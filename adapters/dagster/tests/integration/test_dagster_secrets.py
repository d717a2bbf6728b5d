"""Secrets on a dagster stack: the step gets its secret; files, the Dagster instance and the store keep references."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from conveyor import Client, export_pipeline, get_step_context, pipeline, step
from conveyor.secrets import ENV_SECRETS_KEY, ENV_SECRETS_KEY_FILE, ENV_SECRETS_OWNER
from conveyor_testing.leaks import find_value

pytestmark = [pytest.mark.integration, pytest.mark.dagster]

TOKEN = "dg-4f1d-uNiQuE-step-token-83aa"


@step(secrets=["app"], environment={"TOKEN": "{{app.token}}"})
def token_length() -> int:
    token = get_step_context().get_secret("app")["token"]
    assert os.environ["TOKEN"] == token
    print(f"the token is {token}")  # masked in every log
    return len(token)


@pipeline(enable_cache=False)
def uses_app_secret() -> None:
    token_length()


@pytest.fixture(autouse=True)
def _no_secret_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (ENV_SECRETS_KEY, ENV_SECRETS_KEY_FILE, ENV_SECRETS_OWNER):
        monkeypatch.delenv(name, raising=False)


def test_no_secret_value_leaves_the_step(repo: Path, dagster_stack: str, dagster_home: Path, tmp_path: Path) -> None:
    client = Client()
    client.create_secret("app", {"token": TOKEN})
    run = uses_app_secret.with_options(stack=dagster_stack)()
    assert run.status == "completed" and run.steps["token_length"].output.load() == len(TOKEN)
    assert "***" in run.steps["token_length"].logs() and TOKEN not in run.steps["token_length"].logs()
    [exported] = export_pipeline(uses_app_secret, tmp_path / "code", stack=dagster_stack)
    assert "{{app.token}}" in exported.read_text()
    assert find_value([repo, dagster_home, tmp_path / "code"], TOKEN) == []
