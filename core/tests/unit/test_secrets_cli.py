"""``conveyor secret ...``: values in from flags, files and prompts; out only with --reveal."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from cryptography.fernet import Fernet

from conveyor import Client
from conveyor.cli._secret_commands import secret
from conveyor.secrets import ENV_SECRETS_KEY, ENV_SECRETS_KEY_FILE, ENV_SECRETS_OWNER
from conveyor_testing.leaks import find_value
from tests_support import without_notice

UNIQUE = "cli-9d2e-uNiQuE-vAlUe-0b7c"


@pytest.fixture(autouse=True)
def _no_secret_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (ENV_SECRETS_KEY, ENV_SECRETS_KEY_FILE, ENV_SECRETS_OWNER):
        monkeypatch.delenv(name, raising=False)


def run(*args: str, input: str | None = None, code: int = 0) -> Result:
    result = CliRunner().invoke(secret, list(args), input=input)
    assert result.exit_code == code, result.output
    return result


def test_create_from_flags_and_files_then_get_hides_values(repo: Path) -> None:
    (repo / "key.txt").write_text(UNIQUE + "\n")
    out = run(
        "create",
        "aws_creds",
        "--schema",
        "aws",
        "--aws_access_key_id=AKIAEXAMPLE1",
        "--aws-secret-access-key",
        "@key.txt",
    ).output
    assert (
        without_notice(out) == "Created private secret 'aws_creds' (aws: aws_access_key_id, aws_secret_access_key).\n"
    )
    assert Client().get_secret("aws_creds")["aws_secret_access_key"] == UNIQUE  # newline of the file dropped
    shown = run("get", "aws_creds").output
    assert UNIQUE not in shown and "AKIAEXAMPLE1" not in shown
    assert "aws_secret_access_key: ***" in shown and "schema:  aws" in shown
    data = json.loads(run("get", "aws_creds", "--json").output)
    assert "values" not in data and data["keys"] == ["aws_access_key_id", "aws_secret_access_key"]
    revealed = run("get", "aws_creds", "--reveal").output
    assert f"aws_secret_access_key: {UNIQUE}" in revealed
    data = json.loads(run("get", "aws_creds", "--reveal", "--json").output)
    assert data["values"] == {"aws_access_key_id": "AKIAEXAMPLE1", "aws_secret_access_key": UNIQUE}
    assert find_value([repo / ".conveyor"], UNIQUE) == []


def test_list_never_shows_values(repo: Path) -> None:
    run("create", "api", f"token={UNIQUE}", "--share")
    run("create", "db", "--password", input=UNIQUE + "\n")  # a bare --KEY prompts without echo
    out = run("list").output
    assert UNIQUE not in out
    assert "api" in out and "shared" in out and "db" in out and "private" in out
    rows = json.loads(run("list", "--json").output)
    assert [(r["name"], r["keys"], r["shared"]) for r in rows] == [
        ("api", ["token"], True),
        ("db", ["password"], False),
    ]
    assert UNIQUE not in json.dumps(rows)
    assert Client().get_secret("db")["password"] == UNIQUE


def test_stdin_and_literal_at_values(repo: Path) -> None:
    run("create", "s", "--from-stdin=@-", "--literal=@@home", input=UNIQUE + "\n")
    values = dict(Client().get_secret("s").values)
    assert values == {"from-stdin": UNIQUE, "literal": "@home"}


def test_update_delete_and_errors_are_one_line(repo: Path) -> None:
    run("create", "s", "--a=1", "--b=2")
    assert run("update", "s", "--b=20", "--c=3", "--remove-key", "a", "--share").output == (
        "Updated shared secret 's' (plain: b, c).\n"
    )
    assert dict(Client().get_secret("s").values) == {"b": "20", "c": "3"}
    result = run("update", "s", code=2)
    assert "nothing to change" in result.output
    result = run("get", "nope", code=1)
    assert result.output == "conveyor: error: no secret 'nope' (create it: conveyor secret create nope --KEY=VALUE)\n"
    # A word that is not KEY=VALUE may be a value typed in the wrong place: it is not echoed.
    result = run("create", "x", UNIQUE, code=1)
    assert UNIQUE not in result.output
    assert result.output == "conveyor: error: argument 1 after the secret's name is not --KEY=VALUE or KEY=VALUE\n"
    result = run("create", "x", "--schema", "aws", f"--aws_access_key_id={UNIQUE}", code=1)
    assert UNIQUE not in result.output and "missing key 'aws_secret_access_key'" in result.output
    result = run("create", "x", "--token=@missing.txt", code=1)
    assert "no file missing.txt" in result.output
    result = run("delete", "s", input="n\n", code=1)  # declined
    assert Client().get_secret("s")
    assert run("delete", "s", "-y").output == "Deleted secret 's'.\n"
    assert run("list").output.startswith("No secrets.")


@pytest.mark.sql_store("rotates the repository's key file (a server rotates its own)")
def test_rotate_key_and_generate_key(repo: Path) -> None:
    run("create", "api", f"--token={UNIQUE}")
    key_file = repo / ".conveyor" / "secrets.key"
    old = key_file.read_text()
    out = run("rotate-key", "-y").output
    assert out.startswith("Re-encrypted 1 secret(s) with key ")
    assert key_file.read_text() != old
    assert Client().get_secret("api")["token"] == UNIQUE
    Fernet(run("generate-key").output.strip())


def test_the_root_command_runs_the_secret_group(repo: Path) -> None:
    from conveyor.cli._main import cli

    result = CliRunner().invoke(cli, ["secret", "create", "api", f"--token={UNIQUE}"])
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(cli, ["secret", "get", "missing"])
    assert result.exit_code == 1 and "conveyor: error: no secret 'missing'" in result.output
