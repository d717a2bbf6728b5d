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


def url_without_password(url: str) -> str:
    """A metadata store URL with its password removed (what may be written into a compiled pipeline).

    Raises:
        StoreError: not a database URL.
    """
    import sqlalchemy as sa

    from conveyor.exceptions import StoreError

    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError:
        raise StoreError(f"{url!r} is not a database URL", "e.g. postgresql+psycopg://user@host/db") from None
    if parsed.password is None:
        return url
    # URL.set(password=None) keeps the password: build the URL again without it.
    bare = sa.URL.create(
        parsed.drivername,
        username=parsed.username,
        host=parsed.host,
        port=parsed.port,
        database=parsed.database,
        query=parsed.query,
    )
    return bare.render_as_string(hide_password=False)


def local_store_folders(store_url: str, artifact_path: str) -> list[str]:
    """Folders of this machine a step container must see at the same path: a SQLite file's, a local artifact store.

    A folder inside another one is left out: mounting the outer one brings it.
    """
    import os

    import sqlalchemy as sa

    wanted: set[str] = set()
    parsed = (
        sa.make_url(store_url) if "://" in store_url and not store_url.startswith(("http://", "https://")) else None
    )
    if parsed is not None and parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        wanted.add(os.path.dirname(os.path.realpath(parsed.database)))
    root = artifact_path.removeprefix("file://")
    if root and "://" not in root:
        wanted.add(os.path.realpath(root))
    return sorted(f for f in wanted if not any(f != o and f.startswith(o.rstrip(os.sep) + os.sep) for o in wanted))
