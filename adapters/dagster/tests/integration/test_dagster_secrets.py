"""Secrets on a dagster stack: the step gets its secret; files, the Dagster instance and the store keep references."""

from __future__ import annotations

from pathlib import Path

import pytest
from dagster_test_pipelines import uses_app_secret

from conveyor import Client, export_pipeline
from conveyor.secrets import ENV_SECRETS_KEY, ENV_SECRETS_KEY_FILE, ENV_SECRETS_OWNER
from conveyor_testing.leaks import find_value

pytestmark = [pytest.mark.integration, pytest.mark.dagster]

TOKEN = "dg-4f1d-uNiQuE-step-token-83aa"


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
