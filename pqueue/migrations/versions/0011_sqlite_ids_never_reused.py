"""SQLite never gives a purged job's id again: pq_jobs becomes AUTOINCREMENT.

Without it SQLite gives a new row the largest id in the table plus one, so purging the newest jobs
handed their ids to the next ones (a partner polling a purged job's id read another's job).
AUTOINCREMENT keeps the largest id ever given in sqlite_sequence. The table is rebuilt with its
rows, ids and indexes; ids purged from the top before this revision are not known, and the next
jobs may take them once more. PostgreSQL's sequence never went back on a purge: nothing to do.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def _rebuild(autoincrement: bool) -> None:
    if op.get_bind().dialect.name == "sqlite":
        with op.batch_alter_table("pq_jobs", recreate="always", table_kwargs={"sqlite_autoincrement": autoincrement}):
            pass


def upgrade() -> None:
    _rebuild(autoincrement=True)


def downgrade() -> None:
    _rebuild(autoincrement=False)
