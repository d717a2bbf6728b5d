"""The SQL implementation of the metadata store (SQLAlchemy 2, Alembic migrations).

One module per concern: :mod:`._engine` (connections, transactions, schema
version), :mod:`._pipelines`, :mod:`._runs`, :mod:`._steps` (step runs and
the cache), :mod:`._artifacts`, :mod:`._models` (models, versions, aliases),
:mod:`._stacks`, :mod:`._hooks` (hook invocations); the secrets table is read
and written by :class:`conveyor.secrets.SecretStore`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from conveyor.stores._interface import MetadataStore
from conveyor.stores.sql._engine import SCHEMA_REVISIONS, SqlDatabase

# The table mixins SqlStore is made of stay private: only the store is this package's face.
from conveyor.stores.sql._hooks import HookTables as _HookTables
from conveyor.stores.sql._models import ModelTables as _ModelTables
from conveyor.stores.sql._pipelines import PipelineTables as _PipelineTables
from conveyor.stores.sql._runs import RunTables as _RunTables
from conveyor.stores.sql._stacks import StackTables as _StackTables
from conveyor.stores.sql._steps import StepRunTables as _StepRunTables

if TYPE_CHECKING:
    from pathlib import Path

    from conveyor.secrets import SecretStore

__all__ = ["SCHEMA_REVISIONS", "SqlDatabase", "SqlStore"]


class SqlStore(_PipelineTables, _RunTables, _StepRunTables, _ModelTables, _StackTables, _HookTables, MetadataStore):
    """The metadata store in a SQL database: SQLite (default), MariaDB/MySQL or PostgreSQL.

    Args:
        url: a SQLAlchemy URL.
        migrate: create or upgrade the schema when it is missing or older.

    Raises:
        SchemaVersionError: the database was written by a newer conveyor.
        StoreError: the database cannot be reached, or is damaged.
    """

    def __repr__(self) -> str:
        return f"SqlStore({self.display_url!r})"

    def secret_store(self, *, folder: Path | None = None) -> SecretStore:
        """Secrets encrypted in this database with this process's key (see :mod:`conveyor.secrets`)."""
        from conveyor.secrets import SecretStore

        return SecretStore(self, folder=folder)
