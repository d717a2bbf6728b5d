"""The REST implementation of the metadata store: a client of a conveyor server.

Importing it loads neither SQLAlchemy nor the server's dependencies: a step
that talks to a server stays a light process (``http.client``, the IR
models and the materializers).
"""

from conveyor.stores.rest._http import API_VERSION, ServerConnection
from conveyor.stores.rest._secrets import RestSecretStore
from conveyor.stores.rest._store import RUN_TOKEN_PREFIX, RestStore

__all__ = ["API_VERSION", "RUN_TOKEN_PREFIX", "RestSecretStore", "RestStore", "ServerConnection"]
