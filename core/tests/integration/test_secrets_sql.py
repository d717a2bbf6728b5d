"""The secrets table on real MariaDB and PostgreSQL servers: encrypted, scoped, rotated."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from conveyor.secrets import ENV_SECRETS_KEY, ENV_SECRETS_KEY_FILE, ENV_SECRETS_OWNER, SecretStore, generate_key
from conveyor.stores.sql import SqlStore

pytestmark = pytest.mark.integration

VALUE = "sql-77aa-uNiQuE-secret-value"


@pytest.mark.parametrize(
    "server", [pytest.param("mariadb", marks=pytest.mark.mysql), pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_secrets_on_a_server_database(
    server: str, request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in (ENV_SECRETS_KEY_FILE, ENV_SECRETS_OWNER):
        monkeypatch.delenv(name, raising=False)
    old, new = generate_key(), generate_key()
    monkeypatch.setenv(ENV_SECRETS_KEY, old)
    store = SqlStore(request.getfixturevalue(f"fresh_{server}_url"))
    try:
        alice = SecretStore(store, folder=tmp_path, owner="alice")
        bob = SecretStore(store, folder=tmp_path, owner="bob")
        alice.create("private", {"token": VALUE})
        alice.create("team", {"username": "u", "password": "p"}, schema="registry", shared=True)
        assert [(s.name, s.owner) for s in bob.list()] == [("team", "alice")]
        assert bob.get("team")["password"] == "p"
        with store.read() as conn:
            cells = conn.execute(sa.text("SELECT ciphertext, key_names FROM secrets")).all()
        assert all(VALUE not in str(c) for row in cells for c in row)
        monkeypatch.setenv(ENV_SECRETS_KEY, f"{new},{old}")
        assert alice.rotate_key().rotated == 2
        monkeypatch.setenv(ENV_SECRETS_KEY, new)
        assert alice.get("private")["token"] == VALUE
        alice.update("private", {"token": VALUE + "2"}, shared=True)
        assert bob.get("private")["token"] == VALUE + "2"
        alice.delete("private")
        assert [s.name for s in alice.list()] == ["team"]
    finally:
        store.close()
