"""Alembic's entry: runs the revisions on the connection :func:`assistant.store.db.migrate` hands over (in its
transaction); there is no offline (SQL script) mode and no alembic.ini."""

from __future__ import annotations

from alembic import context

connection = context.config.attributes.get("connection")
if connection is None:  # e.g. the alembic command line: migrations run through assistant.store.db.migrate only
    raise RuntimeError("radassist's migrations run from assistant.store.db.migrate(engine), which passes a connection")
context.configure(connection=connection, target_metadata=None, render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
