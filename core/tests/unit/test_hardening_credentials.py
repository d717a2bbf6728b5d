"""Credentials only as secret references; masking reaches children, raw writes, threads and parsed JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conveyor import Client
from conveyor.exceptions import ConfigError
from tests_support import fails, ok, write_module

CLEAR = "AKIA" + "CLEARVALUE1234"


@pytest.mark.parametrize(
    ("flavor", "config", "field"),
    [
        ("s3", {"path": "s3://b/x", "key": CLEAR}, "key"),
        ("s3", {"path": "s3://b/x", "key": "{{s3.key}}", "secret": CLEAR}, "secret"),
        ("s3", {"path": "s3://b/x", "token": CLEAR}, "token"),
        ("fsspec", {"path": "memory://x", "storage_options": {"token": CLEAR}}, "storage_options.token"),
        (
            "fsspec",
            {"path": "memory://x", "storage_options": {"client_kwargs": {"password": CLEAR}}},
            "storage_options.client_kwargs.password",
        ),
        ("fsspec", {"path": "s3://x", "storage_options": {"secret": CLEAR}}, "storage_options.secret"),
    ],
)
def test_a_clear_credential_is_refused_with_the_secret_command(
    repo: Path, flavor: str, config: dict, field: str
) -> None:
    with pytest.raises(ConfigError) as info:
        Client().register_component("artifact_store", "creds", flavor, config)
    assert field in info.value.message
    assert "conveyor secret create" in (info.value.hint or "")
    assert CLEAR not in str(info.value)
    assert all(c.name != "creds" for c in Client().store.list_components())


def test_the_cli_refuses_a_clear_key_in_one_line(repo: Path) -> None:
    error = fails("artifact-store", "register", "b", "--flavor", "s3", "--path", "s3://b/x", "--key", CLEAR)
    assert "takes only a secret reference" in error and "conveyor secret create key" in error
    assert CLEAR not in error


@given(value=st.text(min_size=1, max_size=40).filter(lambda v: "{{" not in v))
def test_any_clear_value_is_refused(value: str) -> None:
    from pydantic import ValidationError

    from conveyor.stack import flavors

    model = flavors.get("artifact_store", "s3").config_class
    with pytest.raises(ValidationError):
        model.model_validate({"path": "s3://b/x", "secret": value})


def test_references_are_accepted_and_describe_shows_them_not_values(repo: Path) -> None:
    client = Client()
    client.create_secret("s3", {"key": CLEAR, "secret": "also-secret-value"})
    client.register_component(
        "artifact_store", "b", "s3", {"path": "s3://b/x", "key": "{{s3.key}}", "secret": "{{ s3.secret }}"}
    )
    shown = ok("artifact-store", "describe", "b")
    assert "{{s3.key}}" in shown and CLEAR not in shown


STEP = """
import json, os, subprocess, sys, threading
from conveyor import get_step_context, pipeline, step

@step(secrets=["gcp"])
def leak() -> None:
    doc = json.loads(get_step_context().get_secret("gcp")["json"])
    key = doc["private_key"]
    print("print:", key)
    os.write(1, ("fd1: " + doc["client_secret"] + "\\n").encode())
    os.write(2, ("fd2: " + doc["client_secret"] + "\\n").encode())
    subprocess.run([sys.executable, "-c", "import sys; print('child:', sys.argv[1])", doc["client_secret"]], check=True)
    t = threading.Thread(target=lambda: print("thread:", doc["client_secret"]))
    t.start(); t.join()
    print("done")

@pipeline(name="leaky")
def leaky():
    leak()
"""

PRIVATE_KEY = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj\n-----END PRIVATE KEY-----\n"
CLIENT_SECRET = "gcp-client-secret-0123456789"


@pytest.mark.parametrize("mode", ["thread", "process"])
def test_secret_values_are_masked_everywhere_a_step_writes(
    repo: Path, mode: str, capfd: pytest.CaptureFixture[str]
) -> None:
    client = Client()
    client.create_secret(
        "gcp", {"json": json.dumps({"private_key": PRIVATE_KEY, "client_secret": CLIENT_SECRET, "type": "sa"})}
    )
    client.register_component("orchestrator", "mode", "local", {"mode": mode})
    client.register_stack("masked", {"orchestrator": "mode", "artifact_store": "default"})
    write_module(repo, "leaky_pipe", STEP)
    import leaky_pipe

    run = leaky_pipe.leaky.with_options(stack="masked")()
    logs = run.steps["leak"].logs()
    terminal = capfd.readouterr()
    for text in (logs, terminal.out, terminal.err):
        assert CLIENT_SECRET not in text
        assert "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC" not in text
    assert "print: ***" in logs and "thread: ***" in logs and "done" in logs
    if mode == "process":
        # A step process captures its file descriptors: raw writes and children land in its log.
        assert "fd1: ***" in logs and "fd2: ***" in logs and "child: ***" in logs
