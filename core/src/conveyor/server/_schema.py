"""The server's own tables: users and service accounts, credentials, failed logins.

They sit in the same database as the metadata store, with a migration
history of their own (Alembic version table ``conveyor_server_version``), so
the store's schema and the server's evolve apart.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

VERSION_TABLE = "conveyor_server_version"
SCHEMA_REVISIONS = ("s0001",)
"""Every server schema revision, oldest first; the last is its head."""

users = sa.Table(
    "server_users",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(255), nullable=False, unique=True),
    # "user" (logs in with a password) or "service" (an account for CI and workers: API keys only).
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("password_hash", sa.String(255), nullable=True),
    sa.Column("created", sa.DateTime(timezone=True), nullable=False),
)

credentials = sa.Table(
    "server_credentials",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    # SHA-256 of the token: tokens are 256 random bits, so a fast hash keeps lookups to one index probe.
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    # "session" (a login), "api_key" (a service account's key) or "run" (a step token scoped to one run).
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("user_id", sa.String(32), sa.ForeignKey("server_users.id"), nullable=False, index=True),
    sa.Column("run_id", sa.String(32), nullable=True, index=True),
    sa.Column("created", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expires", sa.DateTime(timezone=True), nullable=True),
)

login_failures = sa.Table(
    "server_login_failures",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("username", sa.String(255), nullable=False, index=True),
    sa.Column("address", sa.String(64), nullable=False, index=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
)
