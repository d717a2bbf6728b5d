"""Models on real MariaDB and PostgreSQL servers: version numbers under concurrency, aliases, the migration."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from conveyor import Client
from conveyor.stores.sql import SCHEMA_REVISIONS, SqlStore
from tests_support import MODEL_PIPELINES, race_for_versions, write_module

# Each test makes a database of its own the repository's store, and the migration test reads its tables.
pytestmark = [
    pytest.mark.integration,
    pytest.mark.sql_store("models on a MariaDB or PostgreSQL database of its own"),
]

SERVERS = [pytest.param("mariadb", marks=pytest.mark.mysql), pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=SERVERS)
def server_store(request: pytest.FixtureRequest, repo: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh database on a real server as the repository's metadata store; returns its URL."""
    url = request.getfixturevalue(f"fresh_{request.param}_url")
    monkeypatch.setenv("CONVEYOR_STORE_URL", url)
    return url


def test_parallel_steps_and_concurrent_processes_number_versions_once_each(server_store: str, repo: Path) -> None:
    many, *others = race_for_versions(repo)
    versions = Client().list_model_versions("racer")
    assert [v.number for v in versions] == list(range(1, 11))
    seen = [s.outputs["output"].load() for s in many.steps.values()]
    seen += [r.steps["run_version"].outputs["output"].load() for r in others]
    assert sorted(seen) == list(range(1, 11))
    assert sorted(v.run.id for v in versions) == sorted([many.id] * 8 + [r.id for r in others])


def test_threads_asking_for_versions_at_once_get_each_number_once(server_store: str) -> None:
    store = SqlStore(server_store)
    start = threading.Barrier(16)
    got: list[Any] = []
    errors: list[BaseException] = []

    def ask(i: int) -> None:
        try:
            start.wait()
            # Half the threads share a key (one run's steps): they must all get the same version.
            key = "shared" if i % 2 else f"own-{i}"
            got.append((key, store.get_or_create_model_version("threads", key=key).number))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    store.close()
    assert errors == []
    shared = {n for key, n in got if key == "shared"}
    own = sorted(n for key, n in got if key != "shared")
    assert len(shared) == 1 and sorted([*shared, *own]) == list(range(1, 10))
    assert [v.number for v in Client().list_model_versions("threads")] == list(range(1, 10))


def test_aliases_moved_within_a_second_keep_their_order_and_a_downstream_run_follows(
    server_store: str, repo: Path
) -> None:
    write_module(repo, "server_pipes", MODEL_PIPELINES)
    import server_pipes

    server_pipes.training(n=3)
    server_pipes.training(n=4)
    client = Client()
    for number in (1, 2, 1, 2):  # MariaDB keeps whole seconds: these moves share their timestamps
        client.set_model_version_alias("churn", number, "production")
    history = client.model_alias_history("churn")
    assert [(e.from_version, e.to_version) for e in history] == [(None, 1), (1, 2), (2, 1), (1, 2)]
    run = server_pipes.scoring()
    assert run.steps["predict"].outputs["output"].load() == 12
    assert [v.number for v in run.used_model_versions] == [2]
    assert client.get_model_version("churn", "production").artifacts["model"].load()["made_in"] == 2


def test_a_server_database_at_the_previous_head_with_runs_is_upgraded(server_store: str, repo: Path) -> None:
    import sqlalchemy as sa
    from alembic import command

    from conveyor.client import close_stores
    from conveyor.stores.sql._migrate import alembic_config
    from tests_support import BEFORE_MODELS

    write_module(repo, "upgraded_pipes", MODEL_PIPELINES)
    import upgraded_pipes

    before = upgraded_pipes.training_without_model(lr=0.4)
    close_stores()
    engine = sa.create_engine(server_store)
    with engine.connect() as conn, conn.begin():
        command.downgrade(alembic_config(conn), BEFORE_MODELS)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar() == BEFORE_MODELS
    engine.dispose()
    store = SqlStore(server_store)
    assert store.schema_revision() == SCHEMA_REVISIONS[-1]
    store.close()
    kept = Client().get_run(before.name)
    assert kept.status == "completed" and kept.steps["train"].metadata == {}
    after = upgraded_pipes.training(lr=0.4)
    assert after.steps["train"].cached
    assert Client().get_model_version("churn", 1).artifacts["model"].id == kept.steps["train"].outputs["model"].id
