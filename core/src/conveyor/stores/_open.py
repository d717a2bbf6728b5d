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
    import os

    from conveyor.constants import ENV_STEP_ENTRYPOINT
    from conveyor.stores.sql import SqlStore

    store = SqlStore(url, migrate=migrate)
    if not os.environ.get(ENV_STEP_ENTRYPOINT):
        # A step process may run in a container, where this machine's PIDs are not visible.
        _fail_dead_runs(store)
    return store


def _fail_dead_runs(store: MetadataStore) -> None:
    import sys

    from conveyor.exceptions import StoreError

    try:
        store.fail_dead_runs()
    except StoreError as exc:
        # A full disk or a read-only copy: reading what is there must still work.
        print(f"conveyor: warning: could not mark killed runs as failed: {exc.message}", file=sys.stderr)
