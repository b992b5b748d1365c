"""An operator's reason for failing a job is stored beside its last error.

`pq fail ID --reason ...` used to write the reason over pq_jobs.error, losing the traceback that
explained the failure. The reason now has its own column; a job with one is a job an operator
failed (decided), apart from the manual_intervention jobs still waiting for a person. NULL for
every job stored before (their reasons, if any, stay in error).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("pq_jobs") as batch:
        batch.add_column(sa.Column("operator_reason", sa.Text, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("pq_jobs") as batch:
        batch.drop_column("operator_reason")
