"""A paused queue remembers since when and by whom.

A waiting job's submitter sees why it waits (`wait.reasons`), and `queue_paused` says since when
and by whom (`admin`, `dashboard`, `relay`); a resume clears both. Queues paused before this
migration have neither.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from pqueue.schema import Timestamp

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("pq_queues") as batch:
        batch.add_column(sa.Column("paused_at", Timestamp, nullable=True))
        batch.add_column(sa.Column("paused_by", sa.String(200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("pq_queues") as batch:
        batch.drop_column("paused_by")
        batch.drop_column("paused_at")
