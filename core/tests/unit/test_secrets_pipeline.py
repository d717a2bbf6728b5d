"""Secrets in running pipelines: steps read them, configs refer to them, and no value is left behind."""

from __future__ import annotations

import hashlib
import importlib
import json
import sys
from pathlib import Path

import pytest

from conveyor import Client
from conveyor.exceptions import StepFailedError
from conveyor.secrets import ENV_SECRETS_KEY, ENV_SECRETS_KEY_FILE, ENV_SECRETS_OWNER
from conveyor_testing.leaks import find_value
from tests_support import init_repository, write_module

UNIQUE = "pipe-4c1d-uNiQuE-token-93fa"
DIGEST = hashlib.sha256(UNIQUE.encode()).hexdigest()

PIPELINES = """
import hashlib, logging, os
from conveyor import get_step_context, pipeline, step

def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()

@step(secrets=["app"])
def use_secret() -> str:
    value = get_step_context().get_secret("app")["token"]
    print("the token is", value)
    logging.getLogger("user").warning("the token again: %s", value)
    return digest(value)

@step(environment={"APP_TOKEN": "{{app.token}}", "APP_URL": "https://me:{{ app.token }}@example.invalid/x"})
def use_env(previous: str) -> str:
    print("env:", os.environ["APP_TOKEN"], os.environ["APP_URL"])
    assert os.environ["APP_URL"] == "https://me:" + os.environ["APP_TOKEN"] + "@example.invalid/x"
    return digest(os.environ["APP_TOKEN"])

@step
def use_store() -> str:
    options = get_step_context().artifact_store.storage_options
    print("store options:", options)
    return digest(options["token"])

@pipeline(enable_cache=False)
def uses_secrets() -> None:
    use_env(use_secret())
    use_store()

@pipeline(enable_cache=False)
def only_secret() -> None:
    use_secret()

@step(secrets=["app"])
def leaks_in_error() -> None:
    raise ValueError("rejected token " + get_step_context().get_secret("app")["token"])

@pipeline(enable_cache=False)
def fails_with_secret() -> None:
    leaks_in_error()

@step(secrets=["absent"])
def wants_absent() -> None:
    pass

@pipeline(enable_cache=False)
def missing_secret() -> None:
    wants_absent()

@step(environment={"X": "{{app.nokey}}"})
def wants_missing_key() -> None:
    pass

@pipeline(enable_cache=False)
def missing_key() -> None:
    wants_missing_key()
"""


@pytest.fixture(autouse=True)
def _no_secret_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (ENV_SECRETS_KEY, ENV_SECRETS_KEY_FILE, ENV_SECRETS_OWNER):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def pipelines(repo: Path) -> object:
    write_module(repo, "secret_pipes", PIPELINES)
    sys.path.insert(0, str(repo))
    try:
        yield importlib.import_module("secret_pipes")
    finally:
        sys.path.remove(str(repo))
        sys.modules.pop("secret_pipes", None)


@pytest.fixture
def vault_stacks(repo: Path) -> Client:
    """The secret, an fsspec artifact store whose options refer to it, and stacks in both local modes."""
    client = Client()
    client.create_secret("app", {"token": UNIQUE})
    client.register_component(
        "artifact_store",
        "vault_fs",
        "fsspec",
        # fsspec's local filesystem takes any option; auto_mkdir lets a failing step's log be written.
        {"path": f"file://{repo}/artifacts", "storage_options": {"token": "{{app.token}}", "auto_mkdir": True}},
    )
    client.register_component("orchestrator", "threads", "local", {"mode": "thread"})
    client.register_component("orchestrator", "processes", "local", {"mode": "process"})
    client.register_stack("thread", {"orchestrator": "threads", "artifact_store": "vault_fs"})
    client.register_stack("process", {"orchestrator": "processes", "artifact_store": "vault_fs"})
    return client


@pytest.mark.parametrize("mode", ["thread", "process"])
def test_steps_get_their_secrets_and_nothing_keeps_the_value(
    repo: Path,
    pipelines: object,
    vault_stacks: Client,
    mode: str,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CONVEYOR_STACK", mode)
    run = pipelines.uses_secrets()  # type: ignore[attr-defined]
    assert run.status == "completed"
    outputs = {sid: s.output.load() for sid, s in run.steps.items()}
    # Each step saw the real value: through its context, its environment, its artifact store.
    assert outputs == {"use_secret": DIGEST, "use_env": DIGEST, "use_store": DIGEST}
    logs = {sid: s.logs() for sid, s in run.steps.items()}
    assert "the token is ***" in logs["use_secret"] and "the token again: ***" in logs["use_secret"]
    assert "env: *** https://me:***@example.invalid/x" in logs["use_env"]
    assert "'token': '***'" in logs["use_store"] and "'auto_mkdir': True" in logs["use_store"]
    # What the terminal got, every file under the repository (database and its WAL,
    # artifacts, logs, config, the module), and the stored deployment and stack.
    out, err = capfd.readouterr()
    assert UNIQUE not in out + err
    assert "the token is ***" in out
    assert find_value([repo], UNIQUE) == []
    # The store (the SQLite file here, or a server's database) keeps the references only.
    ir = vault_stacks.store.get_deployment_json(run.deployment_id)
    config = json.dumps(vault_stacks.store.get_component("artifact_store", "vault_fs").config)
    assert "{{app.token}}" in ir and "{{ app.token }}" in ir
    assert "{{app.token}}" in config


@pytest.mark.parametrize("mode", ["thread", "process"])
def test_a_value_in_an_error_is_masked_everywhere(
    repo: Path,
    pipelines: object,
    vault_stacks: Client,
    mode: str,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CONVEYOR_STACK", mode)
    with pytest.raises(
        StepFailedError, match=r"step 'leaks_in_error' failed: ValueError: rejected token \*\*\*"
    ) as err:
        pipelines.fails_with_secret()  # type: ignore[attr-defined]
    assert UNIQUE not in str(err.value)
    run = Client().list_runs("fails_with_secret")[0]
    step = run.steps["leaks_in_error"]
    assert step.status == "failed" and step.error == "ValueError: rejected token ***"
    assert UNIQUE not in (run.error or "")
    assert "ValueError: rejected token ***" in step.logs()  # the traceback, masked
    out, err_text = capfd.readouterr()
    assert UNIQUE not in out + err_text
    assert find_value([repo], UNIQUE) == []


@pytest.mark.parametrize("mode", ["thread", "process"])
def test_a_missing_secret_or_key_fails_the_step_by_name(
    repo: Path, pipelines: object, vault_stacks: Client, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONVEYOR_STACK", mode)
    with pytest.raises(StepFailedError, match=r"step 'wants_absent' failed: no secret 'absent'"):
        pipelines.missing_secret()  # type: ignore[attr-defined]
    with pytest.raises(StepFailedError, match=r"secret 'app' has no key 'nokey' \(its keys: token\)") as err:
        pipelines.missing_key()  # type: ignore[attr-defined]
    assert UNIQUE not in str(err.value)
    for pipeline, step_id, error in (
        ("missing_secret", "wants_absent", "no secret 'absent'"),
        ("missing_key", "wants_missing_key", "secret 'app' has no key 'nokey'"),
    ):
        step = Client().list_runs(pipeline)[0].steps[step_id]
        assert step.status == "failed" and step.error.startswith(error)


def test_a_step_reads_only_the_secrets_it_declared(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_module(
        repo,
        "undeclared_pipe",
        """
from conveyor import get_step_context, pipeline, step

@step
def sneaky() -> str:
    return get_step_context().get_secret("app")["token"]

@pipeline
def undeclared() -> None:
    sneaky()
""",
    )
    monkeypatch.syspath_prepend(str(repo))
    Client().create_secret("app", {"token": UNIQUE})
    module = importlib.import_module("undeclared_pipe")
    with pytest.raises(
        StepFailedError, match=r"did not ask for secret 'app' .*\(declare it: @step\(secrets=\['app'\]\)\)"
    ):
        module.undeclared()


def test_step_processes_outside_the_repository_find_its_key_and_owner(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    from conveyor import _repository

    project = tmp_path_factory.mktemp("project")
    code = tmp_path_factory.mktemp("elsewhere")  # the pipeline's source root, outside the repository
    monkeypatch.delenv("CONVEYOR_REPOSITORY", raising=False)
    for name in ("CONVEYOR_STORE_URL", "CONVEYOR_STACK"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(project)
    write_module(code, "outside_pipe", PIPELINES)
    monkeypatch.syspath_prepend(str(code))
    try:
        init_repository(project)  # `conveyor init` in the working folder
        client = Client()
        client.create_secret("app", {"token": UNIQUE})
        client.register_component("orchestrator", "processes", "local", {"mode": "process"})
        client.register_stack("process", {"orchestrator": "processes", "artifact_store": "default"})
        monkeypatch.setenv("CONVEYOR_STACK", "process")
        module = importlib.import_module("outside_pipe")
        run = module.only_secret()
        assert run.steps["use_secret"].output.load() == DIGEST
        assert "the token is ***" in run.steps["use_secret"].logs()
    finally:
        sys.modules.pop("outside_pipe", None)
        for store in _repository._stores.values():
            store.close()
        _repository._stores.clear()
