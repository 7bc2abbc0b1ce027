"""Alembic environment for the operations store: run on the connection the store passes in
(``config.attributes["connection"]``), never from an ini file."""

from alembic import context

from fresh_solver.operations.store import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata,
                  render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
