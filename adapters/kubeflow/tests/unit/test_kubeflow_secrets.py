"""Secrets on a kubeflow stack: the exported spec and everything in the repository keep references, never values."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from conveyor import Client, get_step_context, pipeline, step
from conveyor.secrets import ENV_SECRETS_KEY, ENV_SECRETS_KEY_FILE, ENV_SECRETS_OWNER
from conveyor_testing.leaks import find_value

TOKEN = "kfp-3d8e-uNiQuE-step-token-a71f"
API_TOKEN = "kfp-6c2b-uNiQuE-api-token-0e94"


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


def _export(output: Path) -> list[Path]:
    """Export on the active stack with the image already pushed (no Docker in unit tests)."""
    from kfp_test_support import FAKE_IMAGE

    from conveyor import deployment_for
    from conveyor.orchestrators import LaunchContext

    deployment, stack, root = deployment_for(uses_app_secret)
    deployment = deployment.model_copy(update={"images": {"": FAKE_IMAGE}})
    ctx = LaunchContext(store=Client().store, stack=stack, source_root=root)
    return stack.orchestrator.export(deployment, ctx, output)


def test_spec_and_repository_hold_no_secret_value(repo: Path) -> None:
    # Imported here: the step processes import this module without the tests folder on their path.
    from kfp_test_support import register_pushed_stack

    client = Client()
    client.create_secret("app", {"token": TOKEN})
    client.create_secret("kfp", {"token": API_TOKEN})
    # Run locally first so the repository holds real artifacts, logs and run records to search.
    run = uses_app_secret.with_options(stack="default")()
    assert run.status == "completed" and run.steps["token_length"].output.load() == len(TOKEN)

    register_pushed_stack("http://127.0.0.1:9", token="{{kfp.token}}")
    [path] = _export(repo / "specs")
    assert path == repo / "specs" / "uses-app-secret.yaml"

    for value in (TOKEN, API_TOKEN):
        assert find_value([repo], value) == []
    text = path.read_text()
    spec = next(yaml.safe_load_all(text))
    assert spec["pipelineInfo"]["name"] == "uses-app-secret"
    assert "{{app.token}}" in text  # the step's environment, resolved only in the pod
    assert "kfp.token" not in text  # the API token is the submitter's, not the pods'
    assert client.store.get_component("orchestrator", "on_kfp").config["token"] == "{{kfp.token}}"
