"""The real-server fixtures: each one starts a server that really works."""

from __future__ import annotations

import os

import pytest
import sqlalchemy as sa

from conveyor_testing.processes import BOOTSTRAP_HINT, missing


def _roundtrip(url: str) -> None:
    engine = sa.create_engine(url)
    try:
        meta = sa.MetaData()
        things = sa.Table(
            "things",
            meta,
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("name", sa.String(64), nullable=False),
        )
        meta.create_all(engine)
        with engine.begin() as conn:
            conn.execute(things.insert(), [{"id": 1, "name": "alpha"}, {"id": 2, "name": "bêta"}])
        with engine.connect() as conn:
            rows = conn.execute(sa.select(things.c.id, things.c.name).order_by(things.c.id)).all()
        assert [tuple(r) for r in rows] == [(1, "alpha"), (2, "bêta")]
        meta.drop_all(engine)
    finally:
        engine.dispose()


def _table_names(url: str) -> list[str]:
    engine = sa.create_engine(url)
    try:
        return sa.inspect(engine).get_table_names()
    finally:
        engine.dispose()


@pytest.mark.integration
@pytest.mark.mysql
def test_mariadb_roundtrip(mariadb_url):
    assert mariadb_url.startswith("mysql+pymysql://")
    assert "@127.0.0.1:" in mariadb_url
    _roundtrip(mariadb_url)


@pytest.mark.integration
@pytest.mark.mysql
def test_mariadb_listens_on_loopback_only(mariadb_url):
    engine = sa.create_engine(mariadb_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT @@bind_address")).scalar() == "127.0.0.1"
            assert conn.execute(sa.text("SELECT @@character_set_server")).scalar() == "utf8mb4"
    finally:
        engine.dispose()


@pytest.mark.integration
@pytest.mark.mysql
def test_fresh_mariadb_databases_are_new_and_empty(fresh_mariadb_url, mariadb_server):
    assert fresh_mariadb_url != mariadb_server.url()
    assert _table_names(fresh_mariadb_url) == []
    _roundtrip(fresh_mariadb_url)


@pytest.mark.integration
@pytest.mark.postgres
def test_postgres_roundtrip(postgres_url):
    assert postgres_url.startswith("postgresql+psycopg://")
    assert "@127.0.0.1:" in postgres_url
    _roundtrip(postgres_url)


@pytest.mark.integration
@pytest.mark.postgres
def test_postgres_listens_on_loopback_only(postgres_url):
    engine = sa.create_engine(postgres_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("SHOW listen_addresses")).scalar() == "127.0.0.1"
            assert conn.execute(sa.text("SHOW server_encoding")).scalar() == "UTF8"
    finally:
        engine.dispose()


@pytest.mark.integration
@pytest.mark.postgres
def test_fresh_postgres_databases_are_new_and_empty(fresh_postgres_url, postgres_server):
    assert fresh_postgres_url != postgres_server.url()
    assert _table_names(fresh_postgres_url) == []
    _roundtrip(fresh_postgres_url)


@pytest.mark.integration
@pytest.mark.postgres
def test_postgres_drop_database_despite_open_connection(postgres_server):
    name = postgres_server.create_database()
    engine = sa.create_engine(postgres_server.url(name))
    conn = engine.connect()
    conn.execute(sa.text("SELECT 1"))
    try:
        postgres_server.drop_database(name)
        admin = sa.create_engine(postgres_server.url())
        with admin.connect() as c:
            left = c.execute(
                sa.text("SELECT count(*) FROM pg_database WHERE datname = :n"),
                {"n": name},
            )
            assert left.scalar() == 0
        admin.dispose()
    finally:
        conn.invalidate()
        engine.dispose()


@pytest.mark.integration
@pytest.mark.s3
def test_s3_write_and_read_back(s3_endpoint, s3_bucket):
    import s3fs

    assert s3_endpoint.url.startswith("http://127.0.0.1:")
    fs = s3fs.S3FileSystem(skip_instance_cache=True, **s3_endpoint.storage_options())
    assert fs.exists(s3_bucket)
    payload = os.urandom(300_000)
    fs.pipe(f"{s3_bucket}/dir/blob.bin", payload)
    with fs.open(f"{s3_bucket}/dir/note.txt", "w") as f:
        f.write("hello")
    assert fs.cat(f"{s3_bucket}/dir/blob.bin") == payload
    assert fs.cat(f"{s3_bucket}/dir/note.txt") == b"hello"
    assert sorted(fs.ls(f"{s3_bucket}/dir")) == [
        f"{s3_bucket}/dir/blob.bin",
        f"{s3_bucket}/dir/note.txt",
    ]


@pytest.mark.integration
@pytest.mark.s3
def test_s3_buckets_are_new_and_rejects_wrong_secret(s3_endpoint, s3_bucket):
    import s3fs

    fs = s3fs.S3FileSystem(skip_instance_cache=True, **s3_endpoint.storage_options())
    assert fs.ls(s3_bucket) == []
    wrong = dict(s3_endpoint.storage_options(), secret="wrong")
    bad = s3fs.S3FileSystem(skip_instance_cache=True, **wrong)
    with pytest.raises(PermissionError):
        bad.pipe(f"{s3_bucket}/x", b"x")


def test_missing_server_fails_with_bootstrap_hint():
    with pytest.raises(pytest.fail.Exception) as info:
        missing("MariaDB server (mariadbd)")
    assert str(info.value) == f"MariaDB server (mariadbd) not found; {BOOTSTRAP_HINT}"
