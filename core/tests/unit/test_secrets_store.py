"""The secrets store: real Fernet encryption at rest, keys, schemas, scoping, references, rotation."""

from __future__ import annotations

import importlib
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet, InvalidToken

import conveyor.secrets as secrets_pkg
from conveyor import Client
from conveyor.exceptions import SecretError
from conveyor.secrets import (
    ENV_SECRETS_KEY,
    ENV_SECRETS_KEY_FILE,
    ENV_SECRETS_OWNER,
    SecretStore,
    find_references,
    generate_key,
    mask_values,
    redact,
    resolve_references,
)
from conveyor_testing import assert_facade_complete
from conveyor_testing.leaks import find_value

UNIQUE = "uNiQ-7f3a9c-s3cr3t-VALUE-e41b"


@pytest.fixture(autouse=True)
def _no_secret_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (ENV_SECRETS_KEY, ENV_SECRETS_KEY_FILE, ENV_SECRETS_OWNER):
        monkeypatch.delenv(name, raising=False)


def _db(repo: Path) -> Path:
    return repo / ".conveyor" / "conveyor.db"


def test_all_is_sorted_and_complete() -> None:
    assert_facade_complete(secrets_pkg)
    assert secrets_pkg.__all__ == sorted(secrets_pkg.__all__)
    for name in secrets_pkg.__all__:
        assert getattr(secrets_pkg, name) is not None


def test_importing_the_package_loads_no_crypto_or_database() -> None:
    code = (
        "import sys, conveyor.secrets, conveyor.secrets._redact; "
        "print(sorted(m for m in ('cryptography', 'sqlalchemy', 'pydantic') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# -- encryption at rest ------------------------------------------------------------------
@pytest.mark.sql_store("reads the secrets table of the SQLite file")
def test_values_are_encrypted_at_rest(repo: Path) -> None:
    client = Client()
    client.create_secret("api", {"token": UNIQUE, "user": "someone"})
    assert client.get_secret("api")["token"] == UNIQUE
    # Not in the database file, its WAL, the config or the key file.
    assert find_value([repo], UNIQUE) == []
    with sqlite3.connect(_db(repo)) as conn:
        (ciphertext, key_id, keys) = conn.execute("SELECT ciphertext, key_id, key_names FROM secrets").fetchone()
    assert ciphertext.startswith("gAAAAA")  # a Fernet token
    assert key_id == client.list_secrets()[0].key_id
    assert keys == '["token", "user"]'


@pytest.mark.sql_store("the repository's key file (a server keeps its own)")
def test_the_key_file_is_created_private(repo: Path) -> None:
    Client().create_secret("api", {"token": UNIQUE})
    key_file = repo / ".conveyor" / "secrets.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    Fernet(key_file.read_text().strip())  # a real Fernet key


@pytest.mark.sql_store("the repository's key file (a server keeps its own)")
def test_a_key_file_others_can_read_is_refused(repo: Path) -> None:
    Client().create_secret("api", {"token": UNIQUE})
    key_file = repo / ".conveyor" / "secrets.key"
    key_file.chmod(0o644)
    with pytest.raises(SecretError, match=r"can be read by other users .*chmod 600"):
        Client().get_secret("api")


def _copy_database(repo: Path, target: Path) -> Path:
    # The backup API copies the WAL's content too, as a thief's copy would.
    target.mkdir(parents=True)
    (target / ".conveyor").mkdir()
    with sqlite3.connect(_db(repo)) as src, sqlite3.connect(target / ".conveyor" / "conveyor.db") as dst:
        src.backup(dst)
    return target


@pytest.mark.sql_store("copies the SQLite file")
def test_a_copied_database_without_the_key_is_useless(
    repo: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    Client().create_secret("api", {"token": UNIQUE})
    owner = Client().list_secrets()[0].owner
    thief = _copy_database(repo, tmp_path_factory.mktemp("thief") / "copy")
    assert find_value([thief], UNIQUE) == []
    monkeypatch.setenv("CONVEYOR_REPOSITORY", str(thief))
    monkeypatch.chdir(thief)
    monkeypatch.setenv(ENV_SECRETS_OWNER, owner)  # even pretending to be the owner
    from conveyor import _repository

    for store in _repository._stores.values():
        store.close()
    _repository._stores.clear()
    client = Client()
    assert [s.name for s in client.list_secrets()] == ["api"]  # names are not secret
    with pytest.raises(SecretError, match=r"no secrets key: .*secrets.key does not exist") as no_key:
        client.get_secret("api")
    assert UNIQUE not in str(no_key.value)
    monkeypatch.setenv(ENV_SECRETS_KEY, generate_key())
    with pytest.raises(SecretError, match=r"cannot decrypt secret 'api': it was stored with key \w+") as wrong:
        client.get_secret("api")
    assert UNIQUE not in str(wrong.value)
    assert not (thief / ".conveyor" / "secrets.key").exists()  # reading never makes a key


@pytest.mark.sql_store("the repository's key file (a server keeps its own)")
def test_a_repository_with_secrets_gets_no_fresh_key_silently(repo: Path) -> None:
    client = Client()
    client.create_secret("api", {"token": UNIQUE})
    (repo / ".conveyor" / "secrets.key").unlink()
    with pytest.raises(SecretError, match="no secrets key"):
        client.create_secret("other", {"token": "x"})


@pytest.mark.sql_store("the key in this process's environment (a server keeps its own)")
def test_an_invalid_key_in_the_environment_is_named_not_shown(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_SECRETS_KEY, "not-a-key-" + UNIQUE)
    with pytest.raises(SecretError, match=r"\$CONVEYOR_SECRETS_KEY is not a valid secrets key") as err:
        Client().create_secret("api", {"token": "x"})
    assert UNIQUE not in str(err.value)


@pytest.mark.sql_store("the key in this process's environment (a server keeps its own)")
def test_key_file_from_the_environment(
    repo: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    key_file = tmp_path_factory.mktemp("keys") / "team.key"
    monkeypatch.setenv(ENV_SECRETS_KEY_FILE, str(key_file))
    Client().create_secret("api", {"token": UNIQUE})
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert not (repo / ".conveyor" / "secrets.key").exists()
    assert Client().get_secret("api")["token"] == UNIQUE


# -- schemas -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("schema", "values", "message"),
    [
        ("aws", {"aws_access_key_id": "AKIA" + UNIQUE}, r"secret 'c' \(aws\): missing key 'aws_secret_access_key'"),
        ("aws", {"aws_access_key_id": "a", "aws_secret_access_key": UNIQUE, "region": "x"}, r"unknown key 'region'"),
        (
            "aws",
            {"aws_access_key_id": "a", "aws_secret_access_key": UNIQUE + "\n"},
            r"'aws_secret_access_key' must not contain whitespace",
        ),
        ("registry", {"username": "me"}, r"\(registry\): missing key 'password'"),
        ("gcp", {"service_account_json": UNIQUE}, r"'service_account_json' is not a service account key"),
        ("azure", {"account_name": UNIQUE}, r"\(azure\): needs connection_string"),
        ("plain", {}, r"\(plain\): has no keys"),
        ("plain", {"token": ""}, r"key 'token' is empty"),
        ("plain", {"bad.key": UNIQUE}, r"key 'bad.key' is not valid"),
        ("plain", {"n": 5}, r"key 'n' must be a string, not int"),
        ("nope", {"token": UNIQUE}, r"unknown secret schema 'nope' \(schemas: plain, aws, gcp, azure, registry\)"),
    ],
)
def test_schema_errors_name_the_key_never_the_value(repo: Path, schema: str, values: dict, message: str) -> None:
    with pytest.raises(SecretError, match=message) as err:
        Client().create_secret("c", values, schema=schema)
    assert UNIQUE not in str(err.value)
    assert "\n" not in str(err.value)
    assert Client().list_secrets() == []


def test_typed_schemas_accept_their_keys(repo: Path) -> None:
    client = Client()
    client.create_secret("aws", {"aws_access_key_id": "AKIA1", "aws_secret_access_key": "s"}, schema="aws")
    client.create_secret("reg", {"username": "me", "password": "p w"}, schema="registry")
    client.create_secret("gcp", {"service_account_json": '{"type": "service_account"}'}, schema="gcp")
    client.create_secret("az", {"account_name": "acc", "sas_token": "?sv=1"}, schema="azure")
    assert {s.name: s.schema for s in client.list_secrets()} == {
        "aws": "aws",
        "az": "azure",
        "gcp": "gcp",
        "reg": "registry",
    }
    with pytest.raises(SecretError, match=r"secret 'aws' \(aws\): unknown key 'token'"):
        client.update_secret("aws", {"token": "x"})


def test_bad_secret_names(repo: Path) -> None:
    for name in ("a.b", "-x", "", "with space"):
        with pytest.raises(SecretError, match="is not valid"):
            Client().create_secret(name, {"k": "v"})


# -- reading, updating, deleting ---------------------------------------------------------
def test_update_merges_removes_and_replaces(repo: Path) -> None:
    client = Client()
    client.create_secret("s", {"a": "1", "b": "2"})
    before = client.list_secrets()[0]
    info = client.update_secret("s", {"b": "20", "c": "3"})
    assert info.keys == ("a", "b", "c") and info.updated > before.updated
    assert dict(client.get_secret("s").values) == {"a": "1", "b": "20", "c": "3"}
    client.update_secret("s", remove_keys=["a"])
    assert dict(client.get_secret("s").values) == {"b": "20", "c": "3"}
    client.update_secret("s", {"z": "9"}, replace=True)
    assert dict(client.get_secret("s").values) == {"z": "9"}
    with pytest.raises(SecretError, match="secret 's' has no key 'a'"):
        client.update_secret("s", remove_keys=["a"])
    with pytest.raises(SecretError, match=r"secret 's' exists \(change it: conveyor secret update s"):
        client.create_secret("s", {"k": "v"})
    client.delete_secret("s")
    with pytest.raises(SecretError, match=r"^no secret 's' \(create it: conveyor secret create s"):
        client.get_secret("s")


def test_repr_and_list_never_show_values(repo: Path) -> None:
    client = Client()
    client.create_secret("s", {"token": UNIQUE})
    secret = client.get_secret("s")
    assert UNIQUE not in repr(secret) and UNIQUE not in str(secret)
    assert UNIQUE not in repr(client.list_secrets())
    assert "values" not in client.list_secrets()[0].to_dict()


@pytest.mark.sql_store("edits the secrets table of the SQLite file")
def test_a_value_from_the_store_is_bound_to_its_row(repo: Path) -> None:
    client = Client()
    client.create_secret("a", {"token": UNIQUE})
    client.create_secret("b", {"token": "other-value"})
    with sqlite3.connect(_db(repo)) as conn:
        token = conn.execute("SELECT ciphertext FROM secrets WHERE name = 'a'").fetchone()[0]
        conn.execute("UPDATE secrets SET ciphertext = ? WHERE name = 'b'", (token,))
    with pytest.raises(SecretError, match="secret 'b' holds the encrypted values of another secret"):
        client.get_secret("b")


# -- scoping -----------------------------------------------------------------------------
@pytest.mark.sql_store("owners per repository (on a server every secret is the team's)")
def test_secrets_are_private_unless_shared(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_SECRETS_OWNER, "alice")
    alice = Client()
    alice.create_secret("private", {"token": UNIQUE})
    alice.create_secret("team", {"token": "team-value"}, shared=True)
    monkeypatch.setenv(ENV_SECRETS_OWNER, "bob")
    bob = Client()
    assert [(s.name, s.owner, s.mine) for s in bob.list_secrets()] == [("team", "alice", False)]
    with pytest.raises(SecretError, match=r"^no secret 'private'"):
        bob.get_secret("private")
    with pytest.raises(SecretError, match=r"^no secret 'private'"):
        resolve_references("{{private.token}}")
    assert bob.get_secret("team")["token"] == "team-value"
    with pytest.raises(SecretError, match=r"secret 'team' belongs to alice \(only its owner can change or delete it\)"):
        bob.update_secret("team", {"token": "mine now"})
    with pytest.raises(SecretError, match="belongs to alice"):
        bob.delete_secret("team")
    # Bob's own secret of the same name comes first for Bob; a second shared one is refused.
    bob.create_secret("team", {"token": "bob-value"})
    assert bob.get_secret("team")["token"] == "bob-value"
    with pytest.raises(SecretError, match="alice already shares a secret named 'team'"):
        bob.update_secret("team", shared=True)
    monkeypatch.setenv(ENV_SECRETS_OWNER, "alice")
    alice.update_secret("private", shared=True)
    monkeypatch.setenv(ENV_SECRETS_OWNER, "bob")
    assert bob.get_secret("private")["token"] == UNIQUE
    monkeypatch.setenv(ENV_SECRETS_OWNER, "alice")
    alice.update_secret("private", shared=False)
    monkeypatch.setenv(ENV_SECRETS_OWNER, "bob")
    with pytest.raises(SecretError, match=r"^no secret 'private'"):
        bob.get_secret("private")


@pytest.mark.sql_store("owners per repository (on a server every secret is the team's)")
def test_the_repository_owner_id_is_recorded_once(repo: Path) -> None:
    Client().create_secret("a", {"k": "v"})
    owner_file = repo / ".conveyor" / "secrets.owner"
    owner = owner_file.read_text().strip()
    Client().create_secret("b", {"k": "v"})
    assert owner_file.read_text().strip() == owner
    assert {s.owner for s in Client().list_secrets()} == {owner}


# -- references --------------------------------------------------------------------------
def test_references_resolve_in_a_copy(repo: Path) -> None:
    Client().create_secret("aws", {"id": "AKIA-" + UNIQUE, "secret": "s3cret"})
    config = {
        "path": "s3://bucket/x",
        "storage_options": {
            "key": "{{aws.id}}",
            "secret": "{{ aws.secret }}",
            "headers": ["Bearer {{aws.secret}}!", 3, None],
            "template": "{{ run_id }} and {{ ds }}",
        },
    }
    assert find_references(config) == [("aws", "id"), ("aws", "secret")]
    resolved = resolve_references(config)
    assert resolved["storage_options"] == {
        "key": "AKIA-" + UNIQUE,
        "secret": "s3cret",
        "headers": ["Bearer s3cret!", 3, None],
        "template": "{{ run_id }} and {{ ds }}",
    }
    assert config["storage_options"]["key"] == "{{aws.id}}"  # the stored config is untouched


def test_missing_secrets_and_keys_are_named_never_their_values(repo: Path) -> None:
    Client().create_secret("aws", {"id": UNIQUE})
    with pytest.raises(SecretError, match=r"^no secret 'gone' \(create it") as err:
        resolve_references({"k": "{{gone.id}}"})
    with pytest.raises(SecretError, match=r"^secret 'aws' has no key 'secret' \(its keys: id\)$") as err:
        resolve_references({"k": "{{aws.secret}}"})
    assert UNIQUE not in str(err.value)


def test_stack_resolve_config_resolves_references(repo: Path) -> None:
    from conveyor.stack import resolve_config

    Client().create_secret("fs", {"token": UNIQUE})
    assert resolve_config({"storage_options": {"token": "{{fs.token}}"}}) == {"storage_options": {"token": UNIQUE}}


def test_configs_without_references_never_load_the_secrets_store() -> None:
    code = (
        "import sys; from conveyor.stack import resolve_config; "
        "assert resolve_config({'path': '/x', 'o': {'a': ['b']}}) == {'path': '/x', 'o': {'a': ['b']}}; "
        "print('conveyor.secrets._store' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_resolved_values_are_masked() -> None:
    mask_values(["abc", "masked-" + UNIQUE, "line-one-value\nline-two-value"])
    assert redact(f"x masked-{UNIQUE} y abc") == "x *** y abc"  # too short to mask: "abc"
    assert redact("got line-two-value") == "got ***"


# -- rotation ----------------------------------------------------------------------------
def _values(client: Client) -> dict[str, dict[str, str]]:
    return {s.name: dict(client.get_secret(s.name).values) for s in client.list_secrets()}


def _make_some(client: Client) -> dict[str, dict[str, str]]:
    client.create_secret("api", {"token": UNIQUE})
    client.create_secret("aws", {"aws_access_key_id": "AKIA2", "aws_secret_access_key": "sk"}, schema="aws")
    client.create_secret("reg", {"username": "me", "password": "pw"}, schema="registry", shared=True)
    return _values(client)


@pytest.mark.sql_store("rotates the repository's key file (a server rotates its own)")
def test_rotate_key_re_encrypts_every_value_and_loses_none(repo: Path) -> None:
    client = Client()
    before = _make_some(client)
    key_file = repo / ".conveyor" / "secrets.key"
    old_key = key_file.read_text().strip()
    with sqlite3.connect(_db(repo)) as conn:
        old_tokens = dict(conn.execute("SELECT name, ciphertext FROM secrets").fetchall())
    result = SecretStore(client.store, folder=repo / ".conveyor").rotate_key()
    assert (result.rotated, result.skipped) == (3, 0)
    new_key = key_file.read_text().strip()
    assert new_key != old_key
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert not (repo / ".conveyor" / "secrets.key.new").exists()
    assert _values(client) == before
    assert {s.key_id for s in client.list_secrets()} == {result.new_key_id}
    with sqlite3.connect(_db(repo)) as conn:
        new_tokens = dict(conn.execute("SELECT name, ciphertext FROM secrets").fetchall())
    old, new = Fernet(old_key.encode()), Fernet(new_key.encode())
    for name, token in new_tokens.items():
        assert token != old_tokens[name]
        new.decrypt(token.encode())
        with pytest.raises(InvalidToken):
            old.decrypt(token.encode())
    assert find_value([repo], UNIQUE) == []


@pytest.mark.sql_store("rotates the repository's key file (a server rotates its own)")
def test_an_interrupted_rotation_loses_nothing(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    client = Client()
    before = _make_some(client)
    store_module = importlib.import_module("conveyor.secrets._store")

    def crash(path: Path) -> None:
        raise OSError("power cut")

    # The database is re-encrypted, then the process dies before the key file is replaced.
    with monkeypatch.context() as patch:
        patch.setattr(store_module, "install_pending_key", crash)
        with pytest.raises(OSError, match="power cut"):
            SecretStore(client.store, folder=repo / ".conveyor").rotate_key()
    pending = repo / ".conveyor" / "secrets.key.new"
    assert pending.exists()
    pending_key = pending.read_text().strip()
    assert _values(client) == before  # readable with the pending key
    client.create_secret("late", {"k": "created-mid-rotation"})
    before["late"] = {"k": "created-mid-rotation"}
    result = SecretStore(client.store, folder=repo / ".conveyor").rotate_key()
    assert result.rotated == 4
    assert not pending.exists()
    assert (repo / ".conveyor" / "secrets.key").read_text().strip() == pending_key  # finished with its key
    assert _values(client) == before
    assert {s.key_id for s in client.list_secrets()} == {result.new_key_id}


@pytest.mark.sql_store("the key in this process's environment (a server keeps its own)")
def test_rotate_a_key_from_the_environment(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    old_key, new_key = generate_key(), generate_key()
    monkeypatch.setenv(ENV_SECRETS_KEY, old_key)
    client = Client()
    before = _make_some(client)
    with pytest.raises(SecretError, match=r"holds one key: there is nothing to rotate to \(put a new key first"):
        SecretStore(client.store).rotate_key()
    monkeypatch.setenv(ENV_SECRETS_KEY, f"{new_key},{old_key}")
    result = SecretStore(client.store).rotate_key()
    assert result.rotated == 3 and result.source == "$CONVEYOR_SECRETS_KEY"
    monkeypatch.setenv(ENV_SECRETS_KEY, new_key)
    assert _values(client) == before
    monkeypatch.setenv(ENV_SECRETS_KEY, old_key)
    with pytest.raises(SecretError, match="cannot decrypt secret"):
        client.get_secret("api")
    assert not (repo / ".conveyor" / "secrets.key").exists()


@pytest.mark.sql_store("keys per repository (a server keeps its own)")
def test_rotation_leaves_secrets_under_other_keys_alone(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    theirs = generate_key()
    monkeypatch.setenv(ENV_SECRETS_KEY, theirs)
    monkeypatch.setenv(ENV_SECRETS_OWNER, "carol")
    Client().create_secret("carols", {"k": "carol-value"}, shared=True)
    monkeypatch.delenv(ENV_SECRETS_KEY)
    monkeypatch.setenv(ENV_SECRETS_OWNER, "dave")
    client = Client()
    client.create_secret("daves", {"k": "dave-value"})
    result = SecretStore(client.store).rotate_key()
    assert (result.rotated, result.skipped) == (1, 1)
    assert client.get_secret("daves")["k"] == "dave-value"
    monkeypatch.setenv(ENV_SECRETS_KEY, theirs)
    assert client.get_secret("carols")["k"] == "carol-value"


def test_a_database_at_the_first_schema_is_upgraded(tmp_path: Path) -> None:
    import sqlalchemy as sa

    from conveyor.stores.sql import SCHEMA_REVISIONS, SqlStore
    from conveyor.stores.sql._migrate import upgrade

    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = sa.create_engine(url)
    upgrade(engine, "0001")
    engine.dispose()
    store = SqlStore(url)
    assert store.schema_revision() == SCHEMA_REVISIONS[-1]
    secrets = SecretStore(store, folder=tmp_path / ".conveyor", owner="me")
    secrets.create("s", {"k": UNIQUE})
    assert secrets.get("s")["k"] == UNIQUE
    store.close()
