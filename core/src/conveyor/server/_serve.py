"""Starting a server: migrations once, the first admin, the default stack, then the workers."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from conveyor.server._app import ServerSettings

ENV_ADMIN_PASSWORD = "CONVEYOR_ADMIN_PASSWORD"
"""The first admin's password on a server's first start (asked for when unset)."""

ENV_SERVER_SETTINGS = "CONVEYOR_SERVER_SETTINGS"
"""How ``conveyor server start`` hands its settings to its worker processes."""

ADMIN = "admin"
"""The name of the admin the first start creates."""


def default_data_dir() -> Path:
    """Where a server keeps its files by default: ``$XDG_DATA_HOME/conveyor/server`` or ``~/.local/share/conveyor/server``."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "conveyor" / "server"


def prepare(settings: ServerSettings, ask_password: Callable[[], str]) -> str | None:
    """Everything a server needs before its workers start; returns the name of an admin it created.

    Runs the schema migrations (once, here: the workers never migrate),
    makes the secrets key file when there is none, creates the first admin
    (password from ``CONVEYOR_ADMIN_PASSWORD`` or ``ask_password``; never
    printed or logged) and the ``default`` stack (its artifact folder in the
    server's folder).

    Raises:
        StoreError: the database cannot be reached or is not a conveyor database.
    """
    from conveyor._repository import ensure_default_stack
    from conveyor.secrets import load_keyring
    from conveyor.server._auth import Authenticator
    from conveyor.stores.sql import SqlStore

    settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    store = SqlStore(settings.store_url, migrate=True)
    try:
        load_keyring(create=True, folder=settings.data_dir)
        auth = Authenticator(store, settings.auth)
        created = None
        if not auth.has_users():
            password = os.environ.get(ENV_ADMIN_PASSWORD) or ask_password()
            auth.create_user(ADMIN, "admin", password)
            created = ADMIN
        ensure_default_stack(store, str(settings.data_dir / "artifacts"))
        return created
    finally:
        store.close()


def serve(settings: ServerSettings, *, host: str, port: int, workers: int = 1, access_log: bool = False) -> None:
    """Serve the API with uvicorn until stopped (SIGTERM or Ctrl-C); ``workers`` processes share the port."""
    import uvicorn

    os.environ[ENV_SERVER_SETTINGS] = ServerSettings(
        store_url=settings.store_url, data_dir=settings.data_dir, auth=settings.auth, migrate=False
    ).to_json()
    uvicorn.run(
        "conveyor.server._app:app_from_environment",
        factory=True,
        host=host,
        port=port,
        workers=workers if workers > 1 else None,
        access_log=access_log,
        log_level="info",
        timeout_keep_alive=5,
        server_header=False,
    )
