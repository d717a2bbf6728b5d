"""Alembic environment: runs on the connection conveyor hands over."""

from alembic import context

from conveyor.stores.sql._schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("conveyor migrations run through conveyor.stores.sql._migrate.upgrade()")
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
context.run_migrations()
