"""Schema migrations of the server's tables (Alembic, a version table of their own)."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config(connection: sa.Connection | None = None):
    """An Alembic config pointing at the server's migrations (and a connection, if given)."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def upgrade(engine: sa.Engine, revision: str = "head") -> None:
    """Upgrade the server's tables behind ``engine`` to ``revision``."""
    from alembic import command

    with engine.connect() as conn:
        conn = conn.execution_options(conveyor_write=True)
        with conn.begin():
            command.upgrade(alembic_config(conn), revision)


def revision(engine: sa.Engine) -> str | None:
    """The server schema's revision, or None before the first migration."""
    from conveyor.server._schema import VERSION_TABLE

    with engine.connect() as conn:
        if not sa.inspect(conn).has_table(VERSION_TABLE):
            return None
        return conn.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()
