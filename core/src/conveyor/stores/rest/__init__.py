"""The REST implementation of the metadata store: a client of a conveyor server.

Importing it loads neither SQLAlchemy nor the server's dependencies: a step
that talks to a server stays a light process (``http.client``, the IR
models and the materializers). The secrets client is loaded on first use:
most steps declare no secret.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from conveyor.stores.rest._http import API_VERSION, ServerConnection
from conveyor.stores.rest._store import RUN_TOKEN_PREFIX, RestStore

if TYPE_CHECKING:
    from conveyor.stores.rest._secrets import RestSecretStore

__all__ = ["API_VERSION", "RUN_TOKEN_PREFIX", "RestSecretStore", "RestStore", "ServerConnection"]


def __getattr__(name: str) -> Any:
    if name == "RestSecretStore":
        from conveyor.stores.rest._secrets import RestSecretStore

        globals()[name] = RestSecretStore
        return RestSecretStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
