"""The server's own tables: users and service accounts, credentials, failed logins.

They are tables of the metadata store's database (migration 0004), defined
with the others in :mod:`conveyor.stores.sql._schema`.
"""

from __future__ import annotations

from conveyor.stores.sql._schema import credentials, login_failures, users

__all__ = ["credentials", "login_failures", "users"]
