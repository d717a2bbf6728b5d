"""The metadata store: migrations, schema checks, SQLite concurrency settings; the artifact store."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from conveyor.exceptions import SchemaVersionError
from conveyor.stores import LocalArtifactStore
from conveyor.stores.sql import SCHEMA_REVISIONS, SqlStore


def test_a_new_database_is_migrated_to_head(tmp_path: Path) -> None:
    store = SqlStore(f"sqlite:///{tmp_path / 'm.db'}")
    assert store.schema_revision() == SCHEMA_REVISIONS[-1]
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 60000


def test_migrations_create_exactly_the_declared_schema(tmp_path: Path) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from conveyor.stores.sql._schema import metadata

    store = SqlStore(f"sqlite:///{tmp_path / 'm.db'}")
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []


def test_the_migration_list_matches_the_alembic_scripts() -> None:
    from alembic.script import ScriptDirectory

    from conveyor.stores.sql._migrate import alembic_config

    scripts = ScriptDirectory.from_config(alembic_config())
    revisions = [r.revision for r in reversed(list(scripts.walk_revisions()))]
    assert tuple(revisions) == SCHEMA_REVISIONS


def test_a_database_from_a_newer_conveyor_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    SqlStore(url).close()
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '9999'")
    with pytest.raises(SchemaVersionError, match=r"has schema 9999, newer than this conveyor's .*upgrade conveyor"):
        SqlStore(url)


def test_local_artifact_store_commits_atomically(tmp_path: Path) -> None:
    store = LocalArtifactStore(str(tmp_path / "art"))
    final = store.join("p", "s", "r", "out")
    tmp = store.temp_uri(final)
    store.makedirs(tmp)
    with store.open(store.join(tmp, "a.bin"), "wb") as f:
        f.write(b"abc")
    assert not store.exists(final)
    first = store.content_hash(tmp)
    store.commit(tmp, final)
    assert store.exists(final) and not store.exists(tmp)
    assert store.content_hash(final) == first
    with store.open(store.join(final, "a.bin"), "rb") as f:
        assert f.read() == b"abc"


def test_a_bad_store_url_is_one_clear_line(tmp_path: Path) -> None:
    from conveyor.exceptions import StoreError

    with pytest.raises(StoreError, match=r"cannot use the metadata store URL 'garbage'.*give a SQLAlchemy URL"):
        SqlStore("garbage")
    with pytest.raises(StoreError, match=r"cannot use the metadata store URL 'db.example/x'"):
        SqlStore("postgresql+nosuchdriver://user:secret@db.example/x")


def test_the_sql_store_keeps_the_finding_and_cleanup_contract(tmp_path: Path) -> None:
    from conveyor_testing.store_contract import check_finding_and_cleanup

    store = SqlStore(f"sqlite:///{tmp_path / 'm.db'}")
    check_finding_and_cleanup(store)
    store.close()


def test_the_sql_store_keeps_the_step_recording_contract(tmp_path: Path) -> None:
    from conveyor_testing.store_contract import check_recording_steps

    store = SqlStore(f"sqlite:///{tmp_path / 'm.db'}")
    check_recording_steps(store)
    store.close()


def test_upgrading_to_0007_fills_in_where_each_artifact_was_made(tmp_path: Path) -> None:
    from conveyor.stores.sql._migrate import upgrade

    url = f"sqlite:///{tmp_path / 'm.db'}"
    engine = sa.create_engine(url)
    upgrade(engine, "0003")
    stamp = "2024-01-01 00:00:00"
    with engine.begin() as conn:
        for sql in (
            f"INSERT INTO pipelines VALUES ('p1', 'old_pipe', '{stamp}')",
            f"INSERT INTO deployments VALUES ('d1', 'p1', '{{}}', '{stamp}')",
            "INSERT INTO pipeline_runs (id, name, pipeline_id, deployment_id, status, created, parameters, "
            f"stack_name, orchestrator, extra) VALUES ('r1', 'run1', 'p1', 'd1', 'completed', '{stamp}', '{{}}', "
            "'default', 'local', '{}')",
            "INSERT INTO step_runs (id, run_id, step_id, step_name, status, cached, source, code_hash, parameters, "
            "attempts) VALUES ('s1', 'r1', 'fit', 'fit', 'completed', 0, 'm:f', 'h', '{}', 1)",
            "INSERT INTO artifact_versions (id, name, version, uri, data_type, materializer, content_hash, "
            f"producer_step_run_id, created, metadata, visualizations) VALUES ('a1', 'model', 1, '/x', 't', 'm', "
            f"'h', 's1', '{stamp}', '{{}}', '{{}}')",
        ):
            conn.exec_driver_sql(sql)
    engine.dispose()
    store = SqlStore(url)
    record = store.get_artifact("a1")
    assert (record.name, record.pipeline_name, record.step_id, record.removed) == ("model", "old_pipe", "fit", None)
    assert store.list_artifacts("model")[0].id == "a1"  # names given before keep their sequence
    store.close()
