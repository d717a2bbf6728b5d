"""Step containers of a run that goes through a conveyor server: they get its URL and their run's token, nothing else."""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

import pytest
from docker_test_support import register_docker_stack, write_module

from conveyor import Client
from conveyor.secrets import ENV_SECRETS_KEY, ENV_SECRETS_KEY_FILE, ENV_SECRETS_OWNER
from conveyor_testing.leaks import find_value
from conveyor_testing.server import ConveyorServer

pytestmark = [pytest.mark.integration, pytest.mark.docker, pytest.mark.server]

TOKEN = "srv-8c1d-uNiQuE-container-token-44e0"

PIPELINE = """
import json, os
from conveyor import get_step_context, pipeline, step


@step(secrets=["app"], environment={"TOKEN": "{{app.token}}"})
def look_around() -> str:
    value = get_step_context().get_secret("app")["token"]
    return json.dumps({
        "env": sorted(k for k in os.environ if k.startswith("CONVEYOR_")),
        "key": os.environ.get("CONVEYOR_API_KEY", ""),
        "ok": value == os.environ["TOKEN"] and len(value) > 10,
    })


@pipeline(enable_cache=False)
def served() -> None:
    look_around()
"""


def test_a_step_container_holds_only_the_server_url_and_its_run_token(
    repo: Path,
    conveyor_server: ConveyorServer,
    monkeypatch: pytest.MonkeyPatch,
    registry: Any,
    base_image: str,
    wheel_cache: Path,
    session_images: None,
    no_leftovers: None,
) -> None:
    for name in (ENV_SECRETS_KEY, ENV_SECRETS_KEY_FILE, ENV_SECRETS_OWNER):
        monkeypatch.delenv(name, raising=False)
    conveyor_server.reset()
    monkeypatch.setenv("CONVEYOR_SERVER", conveyor_server.url)
    monkeypatch.setenv("CONVEYOR_API_KEY", conveyor_server.admin_key)
    monkeypatch.setenv("CONVEYOR_CONFIG_DIR", str(repo.parent / "config"))
    Client().create_secret("app", {"token": TOKEN})
    stack = register_docker_stack(f"{registry.host}/ml", base_image, wheel_cache)
    write_module(repo, "served_box", PIPELINE)
    run = importlib.import_module("served_box").served.with_options(stack=stack)()
    assert run.status == "completed"
    seen = json.loads(run.steps["look_around"].output.load())
    assert seen["ok"] is True
    assert {"CONVEYOR_SERVER", "CONVEYOR_API_KEY"} <= set(seen["env"])
    for leaked in ("CONVEYOR_STORE_URL", ENV_SECRETS_KEY, ENV_SECRETS_KEY_FILE, ENV_SECRETS_OWNER):
        assert leaked not in seen["env"]
    assert seen["key"].startswith("cvr_")
    # Neither the image nor the registry keeps the secret, the admin's key, the database's path or the server's key.
    [image] = {s.record.image for s in run.steps.values()}
    server_key = (conveyor_server.data_dir / "secrets.key").read_text().strip()
    places = [f"docker-image:{image}", registry.root, repo]
    for value in (TOKEN, conveyor_server.admin_key, str(conveyor_server.data_dir), server_key):
        assert find_value(places, value) == [], value
