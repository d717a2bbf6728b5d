"""Opening a metadata store by URL: a SQL database, or a conveyor server."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from conveyor.stores._interface import MetadataStore

REST_SCHEMES = ("http://", "https://")


def open_store(url: str, *, migrate: bool = True) -> MetadataStore:
    """The metadata store at ``url``: ``sqlite:///...``, ``mysql+pymysql://...``, ``postgresql+psycopg://...``.

    Args:
        migrate: create or upgrade a SQL schema that is missing or older.

    Raises:
        StoreError: the URL is not usable, or the store cannot be reached or is damaged.
        SchemaVersionError: the store was written by a newer conveyor.
    """
    from conveyor.stores.sql import SqlStore

    return SqlStore(url, migrate=migrate)
