"""Opening a metadata store by URL: a SQL database, or a conveyor server."""

from __future__ import annotations

from typing import TYPE_CHECKING

from conveyor.stores._profiles import is_server_url

if TYPE_CHECKING:
    from conveyor.stores._interface import MetadataStore

REST_SCHEMES = ("http://", "https://")


def open_store(url: str, *, migrate: bool = True, token: str | None = None) -> MetadataStore:
    """The metadata store at ``url``.

    ``sqlite:///...``, ``mysql+pymysql://...`` and ``postgresql+psycopg://...``
    open a :class:`~conveyor.stores.sql.SqlStore`; ``http://`` and ``https://``
    a :class:`~conveyor.stores.rest.RestStore` that talks to a conveyor server
    (SQLAlchemy is then never imported).

    Args:
        migrate: create or upgrade a SQL schema that is missing or older.
        token: the credential for a server (default: ``CONVEYOR_API_KEY``, else
            the profile logged in to that URL).

    Raises:
        StoreError: the URL is not usable, or the store cannot be reached or is damaged.
        SchemaVersionError: the store was written by a newer conveyor.
    """
    if is_server_url(url):
        from conveyor.stores.rest import RestStore

        return RestStore(url, token=token)
    from conveyor.stores.sql import SqlStore

    return SqlStore(url, migrate=migrate)
