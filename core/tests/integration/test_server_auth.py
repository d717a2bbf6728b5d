"""The server's doors: run-scoped step tokens, roles, runner keys, logins, sessions, versions, an absent server.

Every test talks to a real ``conveyor server start`` on 127.0.0.1.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from conveyor.exceptions import AuthenticationError, PermissionDeniedError, ServerVersionError, StoreError
from conveyor.stores import RunStatus
from conveyor.stores.rest import RestStore
from conveyor_testing.processes import free_port
from conveyor_testing.server import ConveyorServer
from tests_support import write_module

pytestmark = [pytest.mark.server, pytest.mark.integration]

PIPE = """
from conveyor import get_step_context, pipeline, step


@step(secrets=["declared"], environment={"FROM_ENV": "{{in_env.value}}"})
def use() -> int:
    return len(get_step_context().get_secret("declared")["token"])


@pipeline(name="scoped")
def scoped():
    use()
"""


@pytest.fixture(scope="module")
def server(conveyor_server_factory: Callable[..., ConveyorServer]) -> ConveyorServer:
    """A server whose step tokens stop the moment their run settles (no leeway)."""
    return conveyor_server_factory(leeway=0.0)


class World:
    """Two running runs of a pipeline whose step declares one secret, and a token for the first."""

    def __init__(self, server: ConveyorServer, folder: Path) -> None:
        from conveyor.ir import Deployment
        from conveyor.runtime import start_run
        from conveyor.stack import Stack

        self.server = server
        server.reset()
        self.admin = RestStore(server.url, token=server.admin_key)
        secrets = self.admin.secret_store()
        secrets.create("declared", {"token": "s3cret-declared"})
        secrets.create("in_env", {"value": "s3cret-env"})
        secrets.create("other", {"token": "s3cret-other"})
        self.admin.ensure_stack(
            "default",
            {
                "orchestrator": ("default", "local", {}),
                "artifact_store": ("default", "local", {"path": str(folder / "artifacts")}),
            },
        )
        write_module(folder, "scoped_pipe", PIPE)
        sys.path.insert(0, str(folder))
        try:
            import scoped_pipe
        finally:
            sys.path.remove(str(folder))
        ir = scoped_pipe.scoped.trace()
        self.deployment = Deployment(pipeline=ir, stack=Stack.from_record(self.admin.get_stack("default")).ir)
        pipeline = self.admin.get_or_create_pipeline("scoped")
        self.admin.save_deployment(self.deployment.id, pipeline.id, self.deployment.canonical_json())
        self.run = start_run(self.admin, self.deployment)
        self.other = start_run(self.admin, self.deployment)
        self.token = self.admin.run_token(self.run.id)

    def status(self, method: str, path: str, body: Any = None, token: str | None = None) -> int:
        return self.server.request(method, path, body, token=token or self.token)[0]


@pytest.fixture
def world(server: ConveyorServer, tmp_path: Path) -> Iterator[World]:
    w = World(server, tmp_path)
    yield w
    w.admin.close()


def test_a_run_token_reaches_its_own_run_only(world: World) -> None:
    run, other = world.run, world.other
    # What a step needs works.
    assert world.status("GET", f"/api/runs/{run.id}") == 200
    assert world.status("GET", f"/api/deployments/{world.deployment.id}") == 200
    assert world.status("GET", f"/api/runs/{run.id}/steps") == 200
    step = {"step_name": "use", "source": "scoped_pipe:use", "code_hash": "x"}
    assert world.status("POST", f"/api/runs/{run.id}/steps/use/start", {"values": step}) == 200
    # Another run, by id or by name, and listing runs: 403.
    assert world.status("GET", f"/api/runs/{other.id}") == 403
    assert world.status("GET", f"/api/runs/{other.name}") == 403
    assert world.status("GET", f"/api/runs/{other.id}/steps") == 403
    assert world.status("POST", f"/api/runs/{other.id}/steps/use/start", {"values": step}) == 403
    assert world.status("POST", f"/api/runs/{other.id}/settle", {"status": "failed"}) == 403
    assert world.status("GET", "/api/runs") == 403
    assert world.admin.get_run(other.id).status == RunStatus.RUNNING


def test_a_run_token_resolves_only_the_secrets_its_deployment_refers_to(world: World) -> None:
    status, body = world.server.request(
        "POST", "/api/secrets/resolve", {"names": ["declared", "in_env"]}, token=world.token
    )
    assert status == 200
    assert body["secrets"]["declared"]["values"] == {"token": "s3cret-declared"}
    assert body["secrets"]["in_env"]["values"] == {"value": "s3cret-env"}
    status, body = world.server.request("POST", "/api/secrets/resolve", {"names": ["other"]}, token=world.token)
    assert status == 403 and "other" in body["error"]
    assert world.status("GET", "/api/secrets") == 403


def test_a_run_token_mints_nothing_and_touches_no_stack_or_user(world: World) -> None:
    assert world.status("POST", f"/api/runs/{world.run.id}/token") == 403
    assert world.status("POST", f"/api/runs/{world.other.id}/token") == 403
    assert world.status("GET", "/api/stacks") == 403
    assert world.status("GET", "/api/stacks/default") == 403
    assert world.status("POST", "/api/stacks/ensure", {"name": "x", "components": {}}) == 403
    assert world.status("DELETE", "/api/stacks/default") == 403
    assert world.status("GET", "/api/components") == 403
    assert world.status("GET", "/api/users") == 403
    assert world.status("POST", "/api/users", {"name": "eve", "role": "admin", "password": "12345678"}) == 403
    assert world.status("POST", "/api/service-accounts", {"name": "eve", "role": "admin"}) == 403


def test_model_calls_keep_to_the_run_of_a_token_and_aliases_name_who_moved_them(world: World) -> None:
    run, other = world.run, world.other
    step = {"step_name": "use", "source": "scoped_pipe:use", "code_hash": "x"}
    mine = world.admin.start_step_run(run.id, "use", **step)
    theirs = world.admin.start_step_run(other.id, "use", **step)
    # A step creates versions for its own run, reads any version, and links its own steps only.
    status, version = world.server.request(
        "POST", "/api/models/versions", {"model": "churn", "key": "k", "run_id": run.id}, token=world.token
    )
    assert status == 200 and version["number"] == 1 and version["run_id"] == run.id
    assert world.status("POST", "/api/models/versions", {"model": "churn", "run_id": other.id}) == 403
    assert world.status("POST", "/api/models/versions", {"model": "churn"}) == 403
    assert world.status("GET", "/api/model/version?model=churn&version=latest") == 200
    assert world.status("GET", f"/api/model-versions/{version['id']}/artifacts") == 200
    for listing in ("/api/models", "/api/model/versions?model=churn", "/api/model/alias-events?model=churn"):
        assert world.status("GET", listing) == 403
    link = {"run_id": run.id, "step_run_id": mine.id, "role": "produced", "metadata": {"acc": 0.9}}
    assert world.status("POST", f"/api/model-versions/{version['id']}/links", link) == 204
    for stolen in ({**link, "run_id": other.id}, {**link, "step_run_id": theirs.id}):
        assert world.status("POST", f"/api/model-versions/{version['id']}/links", stolen) == 403
    assert [(x.step_run_id, x.metadata) for x in world.admin.list_model_version_links(version_id=version["id"])] == [
        (mine.id, {"acc": 0.9})
    ]
    # Aliases: never a step's or a viewer's to move; an editor's move carries the editor's name, not a claimed one.
    alias = {"model": "churn", "alias": "production", "version_id": version["id"]}
    assert world.status("PUT", "/api/model/alias", alias) == 403
    assert world.status("PUT", "/api/model/alias", alias, token=world.server.create_user("vic", "viewer")) == 403
    editor = RestStore(world.server.url, token=world.server.create_user("edna", "editor"))
    try:
        moved = editor.set_model_alias("churn", "production", version["id"], moved_by="someone-else")
    finally:
        editor.close()
    assert moved is not None and moved.moved_by == "edna"
    assert [e.moved_by for e in world.admin.list_model_alias_events("churn")] == ["edna"]


def test_hook_invocations_keep_to_the_run_of_a_token(world: World) -> None:
    run, other = world.run, world.other
    step_store = RestStore(world.server.url, token=world.token)
    try:
        # A step claims, finishes and reads its own run's hooks; a second claim of the same hook gets nothing.
        claim = step_store.claim_hook_invocation("scoped", run.id, "use", "failure", 0, "hooks:alert")
        assert claim is not None
        assert step_store.claim_hook_invocation("scoped", run.id, "use", "failure", 0, "hooks:alert") is None
        step_store.finish_hook_invocation(claim, "failed", error="boom")
        [mine] = step_store.list_hook_invocations(run.id)
        assert (mine.id, mine.step_id, mine.status, mine.error) == (claim, "use", "failed", "boom")
        assert mine.ended is not None and mine.ended >= mine.started
        # Another run's hooks, hooks of no run, and another run's invocation: refused, and nothing changes.
        for claim_other in (other.id, None):
            with pytest.raises(PermissionDeniedError, match="may not record hooks of other runs"):
                step_store.claim_hook_invocation("scoped", claim_other, None, "success", 0, "hooks:alert")
        theirs = world.admin.claim_hook_invocation("scoped", other.id, None, "success", 0, "hooks:alert")
        assert theirs is not None
        with pytest.raises(PermissionDeniedError):
            step_store.finish_hook_invocation(theirs, "completed")
        for run_id in (other.id, None):
            with pytest.raises(PermissionDeniedError):
                step_store.list_hook_invocations(run_id, pipeline_name="scoped")
    finally:
        step_store.close()
    [record] = world.admin.list_hook_invocations(other.id)
    assert (record.id, record.step_id, record.status, record.ended) == (theirs, None, "running", None)
    # A viewer reads hooks and records none; an editor records the hooks of a run that was never created.
    viewer = world.server.create_user("vi", "viewer")
    claim_body = {"pipeline_name": "scoped", "event": "failure", "position": 0, "hook": "hooks:alert"}
    assert world.status("GET", f"/api/hook-invocations?run_id={run.id}", token=viewer) == 200
    assert world.status("POST", "/api/hook-invocations", claim_body, token=viewer) == 403
    assert world.status("POST", f"/api/hook-invocations/{theirs}/finish", {"status": "failed"}, token=viewer) == 403
    orphan = world.admin.claim_hook_invocation("scoped", None, None, "failure", 0, "hooks:alert")
    assert orphan is not None
    world.admin.finish_hook_invocation(orphan, "completed")
    assert [(h.id, h.run_id, h.status) for h in world.admin.list_hook_invocations(None, pipeline_name="scoped")] == [
        (orphan, None, "completed")
    ]
    # Bodies the store could not hold are refused before they reach it.
    for bad in ({**claim_body, "event": "maybe"}, {**claim_body, "position": -1}, {**claim_body, "extra": 1}):
        assert world.status("POST", "/api/hook-invocations", bad, token=world.server.admin_key) == 422


def test_a_run_token_stops_when_its_run_settles(world: World) -> None:
    assert world.status("GET", f"/api/runs/{world.run.id}") == 200
    assert world.admin.settle_run(world.run.id, RunStatus.COMPLETED)
    status, body = world.server.request("GET", f"/api/runs/{world.run.id}", token=world.token)
    assert status == 401 and "ended with its run" in body["error"]
    # Through the REST store: one line naming the fix.
    step_store = RestStore(world.server.url, token=world.token)
    with pytest.raises(AuthenticationError, match="ended with its run"):
        step_store.get_run(world.run.id)
    step_store.close()
    # And no new token is given for it.
    status, _ = world.server.request("POST", f"/api/runs/{world.run.id}/token", token=world.server.admin_key)
    assert status == 409


def test_a_runner_key_only_joins_runs_and_exchanges_itself_for_their_token(world: World) -> None:
    runner = world.server.create_service_account("worker", "runner")
    store = RestStore(world.server.url, token=runner)
    assert store.get_deployment_json(world.deployment.id).startswith("{")
    from conveyor.runtime import start_run

    joined = start_run(store, world.deployment, run_key="engine:run-1")
    assert joined.run_key == "engine:run-1"
    for call in (store.list_runs, store.list_pipelines, store.list_stacks, store.secret_store().list):
        with pytest.raises(PermissionDeniedError):
            call()
    with pytest.raises(PermissionDeniedError, match="runs its engine started"):
        store.run_token(world.run.id)  # a run with no run key
    store.scope_to_run(joined.id)
    assert store.token is not None and store.token.startswith("cvr_")
    assert store.get_run(joined.id).id == joined.id
    with pytest.raises(PermissionDeniedError):
        store.get_run(world.run.id)
    store.close()


def test_roles(world: World, tmp_path: Path) -> None:
    server = world.server
    viewer = server.create_user("vera", "viewer")
    editor = server.create_user("ed", "editor")
    component = {"type": "orchestrator", "flavor": "local", "name": "mine", "config": {}}
    run_values = {
        "name": "by-hand",
        "pipeline_id": world.run.pipeline_id,
        "deployment_id": world.deployment.id,
        "status": "running",
        "stack_name": "default",
        "orchestrator": "local",
    }
    # A viewer reads, and can neither run nor register.
    assert world.status("GET", "/api/runs", token=viewer) == 200
    assert world.status("GET", "/api/secrets", token=viewer) == 200
    assert world.status("POST", "/api/runs", {"values": run_values}, token=viewer) == 403
    assert world.status("POST", "/api/components", component, token=viewer) == 403
    assert world.status("POST", f"/api/runs/{world.run.id}/token", token=viewer) == 403
    # An editor runs and registers; manages no user, reads no secret value, changes no stack.
    assert world.status("POST", "/api/components", component, token=editor) == 200
    assert world.status("POST", "/api/runs", {"values": run_values}, token=editor) == 200
    assert (
        world.status("POST", "/api/users", {"name": "x", "role": "viewer", "password": "12345678"}, token=editor) == 403
    )
    assert world.status("POST", "/api/secrets/resolve", {"names": ["declared"]}, token=editor) == 403
    assert world.status("POST", "/api/secrets", {"name": "n", "values": {"a": "b"}}, token=editor) == 403
    assert world.status("DELETE", "/api/stacks/default", token=editor) == 403
    # The same through the CLI: one line.
    from click.testing import CliRunner

    from conveyor.cli._main import cli

    env = {"CONVEYOR_SERVER": server.url, "CONVEYOR_API_KEY": viewer, "CONVEYOR_REPOSITORY": str(tmp_path)}
    result = CliRunner().invoke(cli, ["orchestrator", "register", "o2", "--flavor", "local"], env=env)
    errors = [line for line in result.stderr.splitlines() if not line.startswith("conveyor: using ")]
    assert result.exit_code == 1 and errors == [
        "conveyor: error: vera (viewer) may not register components (it needs the editor role; ask an admin)"
    ]
    env["CONVEYOR_API_KEY"] = editor
    result = CliRunner().invoke(cli, ["secret", "get", "declared", "--reveal"], env=env)
    assert result.exit_code == 1 and "may not read the values of secret 'declared'" in result.stderr
    result = CliRunner().invoke(cli, ["secret", "get", "declared"], env=env)
    assert result.exit_code == 0 and "s3cret" not in result.output


def test_repeated_bad_passwords_get_429_and_the_cli_says_so_in_one_line(server: ConveyorServer) -> None:
    server.reset()
    server.create_user("lou", "viewer", "right-password")
    codes = [server.request("POST", "/api/login", {"username": "lou", "password": f"wrong{i}"})[0] for i in range(5)]
    assert codes == [401] * 5
    status, body = server.request("POST", "/api/login", {"username": "lou", "password": "right-password"})
    assert status == 429 and "too many failed logins" in body["error"]
    from click.testing import CliRunner

    from conveyor.cli._main import cli

    result = CliRunner().invoke(
        cli, ["login", server.url, "--username", "lou", "--password-stdin"], input="right-password\n"
    )
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        "conveyor: error: too many failed logins for 'lou' in the last 300 s (wait 300 s, or ask an admin to check "
        "who is guessing)"
    ]


def test_login_profiles_and_an_expired_session(
    server: ConveyorServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from conveyor.cli._main import cli

    server.reset()
    server.create_user("ana", "editor", "ana-password")
    monkeypatch.setenv("CONVEYOR_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("CONVEYOR_REPOSITORY", str(tmp_path))
    for name in ("CONVEYOR_SERVER", "CONVEYOR_API_KEY", "CONVEYOR_STORE_URL", "CONVEYOR_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    runner = CliRunner()
    result = runner.invoke(
        cli, ["login", server.url, "-u", "ana", "--password-stdin", "--profile", "team"], input="ana-password\n"
    )
    assert result.exit_code == 0, result.output
    profiles = tmp_path / "config" / "profiles.json"
    assert profiles.stat().st_mode & 0o777 == 0o600
    assert "ana-password" not in profiles.read_text()
    listed = runner.invoke(cli, ["profile", "list", "--json"])
    assert [(p["name"], p["active"]) for p in __import__("json").loads(listed.stdout)] == [
        ("local", False),
        ("team", True),
    ]
    from conveyor import _repository

    _repository.close_stores()
    runs = runner.invoke(cli, ["pipeline", "list"])
    assert runs.exit_code == 0 and f"conveyor: using profile 'team': {server.url} as ana" in runs.stderr
    # The session expires: every command says how to log in again.
    engine = sa.create_engine(server.store_url)
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE server_credentials SET expires = :t WHERE kind = 'session'"), {"t": "2000-01-01 00:00:00"}
        )
    engine.dispose()
    _repository.close_stores()
    expired = runner.invoke(cli, ["pipeline", "list"])
    errors = [line for line in expired.stderr.splitlines() if not line.startswith("conveyor: using ")]
    assert expired.exit_code == 1
    assert errors == [f"conveyor: error: the session of 'ana' expired (log in again: conveyor login {server.url})"]
    _repository.close_stores()
    assert runner.invoke(cli, ["logout"]).exit_code == 0
    assert runner.invoke(cli, ["profile", "use", "team"]).exit_code == 0
    _repository.close_stores()
    logged_out = runner.invoke(cli, ["pipeline", "list"])
    assert logged_out.exit_code == 1 and "needs you to log in" in logged_out.stderr
    assert runner.invoke(cli, ["profile", "delete", "team"]).exit_code == 0
    _repository.close_stores()


def test_a_client_of_another_api_version_gets_one_line(server: ConveyorServer, monkeypatch: pytest.MonkeyPatch) -> None:
    from conveyor.stores.rest import _http

    monkeypatch.setattr(_http, "API_VERSION", 2)
    store = RestStore(server.url, token=server.admin_key)
    with pytest.raises(ServerVersionError) as caught:
        store.list_pipelines()
    assert str(caught.value).startswith("this conveyor (0.1.0, API 2) is newer than the server (0.1.0, API 1)")
    assert "upgrade the server" in str(caught.value)
    monkeypatch.setattr(_http, "API_VERSION", 0)
    with pytest.raises(ServerVersionError, match="is older than the server"):
        store.list_pipelines()
    store.close()


def test_an_unreachable_server_is_one_line_within_seconds(tmp_path: Path) -> None:
    store = RestStore(f"http://127.0.0.1:{free_port()}", token="x")
    started = time.monotonic()
    with pytest.raises(
        StoreError, match=r"cannot reach the conveyor server at http://127\.0\.0\.1:\d+: Connection refused"
    ):
        store.list_runs()
    assert time.monotonic() - started < 5
    # A host that never answers: the connect timeout, not a hang.
    silent = RestStore("http://127.0.0.1:9", token="x")
    with pytest.raises(StoreError, match="cannot reach"):
        silent.list_runs()


def test_users_and_service_accounts_from_the_cli(server: ConveyorServer, tmp_path: Path) -> None:
    import json

    from click.testing import CliRunner

    from conveyor.cli._main import cli

    server.reset()
    env = {
        "CONVEYOR_SERVER": server.url,
        "CONVEYOR_API_KEY": server.admin_key,
        "CONVEYOR_REPOSITORY": str(tmp_path),
        "CONVEYOR_CONFIG_DIR": str(tmp_path / "config"),
    }
    runner = CliRunner(env=env)
    made = runner.invoke(cli, ["user", "create", "bo", "--role", "editor", "--password-stdin"], input="bo-password\n")
    assert made.exit_code == 0, made.output
    users = json.loads(runner.invoke(cli, ["user", "list", "--json"]).stdout)
    assert {(u["name"], u["role"]) for u in users} == {("admin", "admin"), ("bo", "editor")}
    assert all("password" not in json.dumps(u) for u in users)
    key = runner.invoke(cli, ["service-account", "create", "ci", "--role", "editor"])
    assert key.exit_code == 0 and key.stdout.strip().startswith("cvk_")
    listed = runner.invoke(cli, ["service-account", "list", "--json"]).stdout
    assert key.stdout.strip() not in listed  # shown once, kept only as a hash
    assert server.request("GET", "/api/me", token=key.stdout.strip())[1]["name"] == "ci"
    assert runner.invoke(cli, ["service-account", "delete", "ci"]).exit_code == 0
    assert server.request("GET", "/api/me", token=key.stdout.strip())[0] == 401  # its key died with it
    assert runner.invoke(cli, ["user", "delete", "bo"]).exit_code == 0
    # Nothing of the first admin's password reached the server's log or its database in the clear.
    assert server.admin_password not in server.log_path.read_text()
    assert not find_in_database(server, server.admin_password)
    bad = runner.invoke(cli, ["user", "create", "x", "--role", "owner", "--password-stdin"], input="pw\n")
    assert bad.exit_code == 2 and "'owner' is not one of" in bad.stderr


def find_in_database(server: ConveyorServer, value: str) -> bool:
    from conveyor_testing.leaks import find_value

    return bool(find_value([server.data_dir], value))
