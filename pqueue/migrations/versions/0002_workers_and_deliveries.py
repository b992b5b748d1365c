"""The worker registry and the callback outbox.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from pqueue.schema import Id, Timestamp

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pq_workers",
        sa.Column("id", sa.String(200), primary_key=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("queue", sa.String(200), nullable=False),
        sa.Column("started_at", Timestamp, nullable=False),
        sa.Column("last_seen", Timestamp, nullable=False),
    )
    op.create_table(
        "pq_deliveries",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("job_id", sa.BigInteger, sa.ForeignKey("pq_jobs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("lease_id", sa.BigInteger, nullable=False),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_status_code", sa.Integer, nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("next_attempt_at", Timestamp, nullable=False),
        sa.Column("last_attempt_at", Timestamp, nullable=True),
        sa.Column("delivered_at", Timestamp, nullable=True),
        sa.Column("locked_by", sa.String(200), nullable=True),
        sa.Column("locked_until", Timestamp, nullable=True),
    )
    op.create_index("ix_pq_deliveries_job", "pq_deliveries", ["job_id", "id"])
    op.create_index("ix_pq_deliveries_due", "pq_deliveries", ["status", "next_attempt_at"])


def downgrade() -> None:
    op.drop_table("pq_deliveries")
    op.drop_table("pq_workers")
