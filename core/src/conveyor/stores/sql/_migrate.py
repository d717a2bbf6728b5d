"""Schema migrations of the metadata store, run through Alembic."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config(connection: sa.Connection | None = None) -> Any:
    """An Alembic config pointing at conveyor's migrations (and a connection, if given)."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def upgrade(engine: sa.Engine, revision: str = "head") -> None:
    """Upgrade the database behind ``engine`` to ``revision``."""
    from alembic import command

    with engine.connect() as conn:
        # SQLite: a write transaction from the start, so that two processes
        # creating the same new database queue instead of racing.
        conn = conn.execution_options(conveyor_write=True)
        with conn.begin():
            command.upgrade(alembic_config(conn), revision)
