"""Alembic environment of the server's tables: runs on the connection the server hands over."""

from alembic import context

from conveyor.server._schema import VERSION_TABLE, metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("server migrations run through conveyor.server._migrate.upgrade()")
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True, version_table=VERSION_TABLE)
context.run_migrations()
