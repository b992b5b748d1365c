"""What the submitter's view predicted for a job when it was submitted.

The intake records, for a sample of new jobs, the predicted p50, p90 and latest start; `/metrics`
and `pq stats` compare them with when the jobs started (calibration). A prediction goes with
its job (ON DELETE CASCADE), so a purge takes both.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from pqueue.schema import Timestamp

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pq_predictions",
        sa.Column("job_id", sa.BigInteger, sa.ForeignKey("pq_jobs.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("queue", sa.String(200), nullable=False),
        sa.Column("predicted_at", Timestamp, nullable=False),
        sa.Column("start_p50", Timestamp, nullable=True),
        sa.Column("start_p90", Timestamp, nullable=True),
        sa.Column("start_latest", Timestamp, nullable=True),
    )
    op.create_index("ix_pq_predictions_at", "pq_predictions", ["predicted_at"])


def downgrade() -> None:
    op.drop_index("ix_pq_predictions_at", table_name="pq_predictions")
    op.drop_table("pq_predictions")
