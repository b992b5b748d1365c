"""A queue may allow timeout retries; a job counts its timeouts.

A run killed at the job timeout sends its job to manual_intervention without another run,
unless its queue's timeout_retries (`pq queue set --timeout-retries N`) allows more: then it is
retried like any failed attempt until it has timed out N + 1 times. NULL: the reading program's
PQ_TIMEOUT_RETRIES (default 0). pq_jobs.timeouts starts at 0 for every job stored before.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("pq_queues") as batch:
        batch.add_column(sa.Column("timeout_retries", sa.Integer, nullable=True))
    with op.batch_alter_table("pq_jobs") as batch:
        batch.add_column(sa.Column("timeouts", sa.Integer, nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("pq_jobs") as batch:
        batch.drop_column("timeouts")
    with op.batch_alter_table("pq_queues") as batch:
        batch.drop_column("timeout_retries")
