"""The SQL store's database: engine, transactions and schema version.

SQLite (the default, a file in ``.conveyor/``) runs in WAL mode with a busy
timeout, and every write transaction starts with ``BEGIN IMMEDIATE`` so that
concurrent processes queue instead of failing on lock upgrades. MariaDB/MySQL
and PostgreSQL work by URL. The schema is versioned with Alembic.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from dataclasses import fields
from datetime import datetime, timezone
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.exc import DatabaseError, IntegrityError

from conveyor.exceptions import SchemaVersionError, StoreError

SCHEMA_REVISIONS = ("0001", "0002", "0003", "0004", "0005", "0006", "0007")
"""Every schema revision this conveyor knows, oldest first; the last is its head."""

R = TypeVar("R")


def aware(value: Any) -> Any:
    """A naive datetime read back from the database, as UTC (other values unchanged)."""
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value


def to_record(cls: type[R], row: Any) -> R:
    """A record dataclass from a result row with (at least) its fields."""
    data = row._mapping
    # Fields that are not columns (a run's tags) keep their defaults; the caller fills them in.
    return cls(**{f.name: aware(data[f.name]) for f in fields(cls) if f.name in data})  # type: ignore[arg-type]


def short_error(exc: BaseException) -> str:
    """The first line of a database error, without SQLAlchemy's statement dump."""
    orig = getattr(exc, "orig", None)
    return str(orig if orig is not None else exc).splitlines()[0]


def _sqlite_path(url: sa.URL) -> str | None:
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return url.database


def _damaged_hint(db: SqlDatabase) -> str | None:
    if db.local_path is None:
        return None
    return "if the file is damaged, restore it from a backup, or start a new store with `conveyor init --force`"


class SqlDatabase:
    """Connections to one metadata database, and its schema.

    Args:
        url: a SQLAlchemy URL (``sqlite:///path``, ``mysql+pymysql://...``,
            ``postgresql+psycopg://...``).
        migrate: create or upgrade the schema when it is missing or older.

    Raises:
        SchemaVersionError: the database was written by a newer conveyor.
        StoreError: the database cannot be reached, or is not a conveyor database.
    """

    def __init__(self, url: str, *, migrate: bool = True) -> None:
        try:
            self.sa_url = sa.make_url(url)
            self.backend = self.sa_url.get_backend_name()
            self.is_sqlite = self.backend == "sqlite"
            self.engine = self._create_engine()
        except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError, ImportError) as exc:
            shown = url.split("@")[-1] if "@" in url else url
            raise StoreError(
                f"cannot use the metadata store URL {shown!r}: {short_error(exc)}",
                "give a SQLAlchemy URL such as sqlite:///path.db, mysql+pymysql://... or postgresql+psycopg://... "
                '(drivers, in the root folder of a conveyor clone: pip install "./core[mysql]", or "./core[postgres]")',
            ) from None
        self.url = self.sa_url.render_as_string(hide_password=False)
        self.read_only = False
        try:
            self._check_schema(migrate)
        except StoreError as exc:
            self.engine.dispose()
            if not self._can_read_as_is(exc):
                raise
            self._open_read_only(exc)
        except BaseException:
            self.engine.dispose()
            raise

    def _can_read_as_is(self, exc: StoreError) -> bool:
        # SQLite in WAL mode must create its -wal and -shm files to open: on a full disk it
        # cannot, though the database file itself is whole.
        text = exc.message.lower()
        return self.local_path is not None and ("disk i/o error" in text or "full" in text)

    def _open_read_only(self, cause: StoreError) -> None:
        import sys

        path = self.local_path
        self.engine = sa.create_engine(f"sqlite:///file:{path}?mode=ro&immutable=1&uri=true")
        self.read_only = True
        try:
            revision = self.schema_revision()
        except StoreError:
            self.engine.dispose()
            raise cause from None
        if revision not in SCHEMA_REVISIONS:
            self.engine.dispose()
            raise cause
        print(
            f"conveyor: warning: cannot write to {path} ({cause.message.rsplit(': ', 1)[-1]}; is the disk full?): "
            "reading it as it is; nothing can be recorded until there is space again",
            file=sys.stderr,
        )

    @property
    def display_url(self) -> str:
        """The URL with any password hidden."""
        return self.sa_url.render_as_string(hide_password=True)

    @property
    def local_path(self) -> str | None:
        """The SQLite database file, if the store is one."""
        return _sqlite_path(self.sa_url)

    # -- connection ------------------------------------------------------------------
    def _create_engine(self) -> sa.Engine:
        if not self.is_sqlite:
            return sa.create_engine(self.sa_url, pool_pre_ping=True, pool_size=8, max_overflow=32)
        path = _sqlite_path(self.sa_url)
        if path:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        engine = sa.create_engine(self.sa_url, connect_args={"check_same_thread": False, "timeout": 60})

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            # Let SQLAlchemy, not the sqlite3 module, decide when to BEGIN.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA busy_timeout = 60000")
            if path:
                cur.execute("PRAGMA journal_mode = WAL")
                cur.execute("PRAGMA synchronous = NORMAL")
            cur.execute("PRAGMA foreign_keys = ON")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: sa.Connection) -> None:
            write = conn.get_execution_options().get("conveyor_write", False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

        return engine

    @contextlib.contextmanager
    def write(self) -> Iterator[sa.Connection]:
        """A write transaction (serialized with other writers on SQLite)."""
        try:
            with self.engine.connect() as conn:
                conn = conn.execution_options(conveyor_write=True)
                with conn.begin():
                    yield conn
        except IntegrityError:
            raise  # a constraint: the caller decides (a concurrent writer won a race)
        except DatabaseError as exc:
            raise self._error(exc) from None

    @contextlib.contextmanager
    def read(self) -> Iterator[sa.Connection]:
        """A read-only transaction."""
        try:
            with self.engine.connect() as conn, conn.begin():
                yield conn
        except IntegrityError:
            raise
        except DatabaseError as exc:
            raise self._error(exc) from None

    def _error(self, exc: DatabaseError) -> StoreError:
        text = short_error(exc)
        hint = None
        if self.read_only or "full" in text.lower():
            hint = "free some disk space; runs left running are marked failed the next time the store opens"
        elif any(w in text.lower() for w in ("malformed", "not a database", "corrupt")):
            hint = _damaged_hint(self)
        return StoreError(f"metadata store {self.display_url}: {text}", hint)

    def close(self) -> None:
        """Release the connections."""
        self.engine.dispose()

    # -- schema ----------------------------------------------------------------------
    def schema_revision(self) -> str | None:
        """The schema revision of the database, or None when it is empty."""
        try:
            with self.engine.connect() as conn:
                found: bool
                if self.is_sqlite:
                    # One cheap query instead of the inspector: this runs on every start.
                    found = (
                        conn.exec_driver_sql(
                            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'alembic_version'"
                        ).first()
                        is not None
                    )
                else:
                    found = sa.inspect(conn).has_table("alembic_version")
                if not found:
                    return None
                return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
        except DatabaseError as exc:
            raise StoreError(
                f"cannot open the metadata store {self.display_url}: {short_error(exc)}", _damaged_hint(self)
            ) from None

    def _check_schema(self, migrate: bool) -> None:
        self._refuse_truncated_file()
        revision = self.schema_revision()
        head = SCHEMA_REVISIONS[-1]
        if revision == head:
            return
        if revision is None and self._has_tables():
            raise StoreError(
                f"{self.display_url} holds tables but no conveyor schema version: it is not a conveyor metadata "
                "store, or its version table was removed",
                "point CONVEYOR_STORE_URL at a conveyor database (an empty one is set up on first use), "
                "or restore this one from a backup",
            )
        if revision is not None and revision not in SCHEMA_REVISIONS:
            raise SchemaVersionError(
                f"the metadata store {self.display_url} has schema {revision}, newer than this conveyor's {head}",
                "upgrade conveyor to use it (in an updated conveyor clone: pip install ./core)",
            )
        if not migrate:
            raise SchemaVersionError(f"the metadata store {self.display_url} needs migrating to {head}")
        self.migrate()

    def _refuse_truncated_file(self) -> None:
        # SQLite treats an empty file as an empty database and would set up a
        # fresh schema in it: a truncated store would silently start over.
        path = self.local_path
        if path is None or not os.path.exists(path):
            return
        deadline = time.monotonic() + 2.0
        while os.path.getsize(path) == 0:
            # Another process may have just created the file and be writing its first page.
            if time.monotonic() > deadline:
                raise StoreError(
                    f"the metadata store {path} is an empty file (truncated?); its runs, artifacts and stacks "
                    "are not in it",
                    "restore it from a backup, or start a new store with `conveyor init --force` "
                    "(the old file is kept beside it)",
                )
            time.sleep(0.05)

    def _has_tables(self) -> bool:
        try:
            with self.engine.connect() as conn:
                names = set(sa.inspect(conn).get_table_names())
        except DatabaseError as exc:
            raise StoreError(f"cannot open the metadata store {self.display_url}: {short_error(exc)}") from None
        # A version table without its row is a schema being set up by another process (MySQL has no transactional DDL).
        return bool(names) and "alembic_version" not in names

    def migrate(self) -> None:
        """Upgrade the database schema to this conveyor's head revision."""
        from conveyor.stores.sql._migrate import upgrade

        upgrade(self.engine)
