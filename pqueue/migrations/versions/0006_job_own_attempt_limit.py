"""A job remembers whether its attempt limit is its submitter's own.

A job whose limit was not given follows its queue's stored max_attempts, which each claim copies
in, so `pq queue set --max-attempts` reaches jobs that are already waiting; a job submitted with
its own max_attempts keeps it. NULL (every job stored before this revision) follows the queue.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("pq_jobs") as batch:
        batch.add_column(sa.Column("max_attempts_given", sa.Boolean, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("pq_jobs") as batch:
        batch.drop_column("max_attempts_given")
