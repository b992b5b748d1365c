"""Alembic environment: runs on the connection `pqueue.database.upgrade` passes in."""

from __future__ import annotations

from alembic import context

from pqueue.database import VERSION_TABLE
from pqueue.schema import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    version_table=VERSION_TABLE,
    render_as_batch=True,  # SQLite needs table rebuilds for most ALTERs
)
with context.begin_transaction():
    context.run_migrations()
