"""Secrets in step containers: steps read them, and no image, registry or repository file keeps the value."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import pytest
from docker_test_support import step_logs, write_module

from conveyor import Client
from conveyor.secrets import ENV_SECRETS_KEY, ENV_SECRETS_KEY_FILE, ENV_SECRETS_OWNER
from conveyor_testing.leaks import find_value

pytestmark = [pytest.mark.integration, pytest.mark.docker]

TOKEN = "dk-2f6a-uNiQuE-step-token-7b19"

PIPELINE = """
import os
from conveyor import get_step_context, pipeline, step


@step(secrets=["app"])
def context_length() -> int:
    value = get_step_context().get_secret("app")["token"]
    print("the token is", value)
    return len(value)


@step(environment={"TOKEN": "{{app.token}}"})
def env_length(previous: int) -> int:
    return previous + len(os.environ["TOKEN"])


@pipeline(enable_cache=False)
def boxed_secret() -> None:
    env_length(context_length())
"""


@pytest.fixture(autouse=True)
def _no_secret_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (ENV_SECRETS_KEY, ENV_SECRETS_KEY_FILE, ENV_SECRETS_OWNER):
        monkeypatch.delenv(name, raising=False)


def test_a_step_container_reads_its_secret_and_nothing_keeps_the_value(
    repo: Path, docker_stack: str, registry: Any
) -> None:
    Client().create_secret("app", {"token": TOKEN})
    write_module(repo, "secret_box", PIPELINE)
    run = importlib.import_module("secret_box").boxed_secret.with_options(stack=docker_stack)()
    assert run.status == "completed"
    assert run.steps["context_length"].output.load() == len(TOKEN)
    assert run.steps["env_length"].output.load() == 2 * len(TOKEN)
    assert "the token is ***" in step_logs(run.steps["context_length"])  # masked inside the container

    images = {s.record.image for s in run.steps.values()}
    assert len(images) == 1 and None not in images
    [image] = images
    # The image the steps ran in, the registry's storage, the repository (database, artifacts, logs).
    assert find_value([f"docker-image:{image}", registry.root, repo], TOKEN) == []
    # The key reached the containers through their runtime environment only, never a layer.
    from conveyor.secrets import load_keyring

    [key] = load_keyring().keys
    assert find_value([f"docker-image:{image}", registry.root], key) == []
