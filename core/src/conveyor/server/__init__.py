"""The conveyor server: one team store behind a REST API (``pip install "./core[server]"``).

``conveyor server start`` runs it; :func:`create_app` is its ASGI app. The
server alone holds the database URL and the secrets key; people log in
(roles ``viewer``, ``editor``, ``admin``), CI and engine workers use
service-account API keys, and each run's steps get a token scoped to that
run (see :mod:`conveyor.server._auth`).
"""

from conveyor.server._app import ServerSettings, create_app
from conveyor.server._auth import SERVICE_ROLES, USER_ROLES, AuthSettings, hash_password, verify_password
from conveyor.server._serve import ENV_ADMIN_PASSWORD, default_data_dir, prepare, serve

__all__ = [
    "ENV_ADMIN_PASSWORD",
    "SERVICE_ROLES",
    "USER_ROLES",
    "AuthSettings",
    "ServerSettings",
    "create_app",
    "default_data_dir",
    "hash_password",
    "prepare",
    "serve",
    "verify_password",
]
