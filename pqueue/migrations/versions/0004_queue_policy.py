"""Each queue's policy beside its seats: max attempts, job timeout, lease and retry backoff.

A NULL column means "the PQ_ default of the program reading it"; `pq queue set` stores a value,
and then every host reads the same one.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("pq_queues") as batch:
        batch.add_column(sa.Column("max_attempts", sa.Integer, nullable=True))
        batch.add_column(sa.Column("job_timeout", sa.Float, nullable=True))
        batch.add_column(sa.Column("lease_seconds", sa.Float, nullable=True))
        batch.add_column(sa.Column("retry_backoff_seconds", sa.Float, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("pq_queues") as batch:
        for name in ("retry_backoff_seconds", "lease_seconds", "job_timeout", "max_attempts"):
            batch.drop_column(name)
