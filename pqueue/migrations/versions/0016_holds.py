"""Jobs claimed ahead for a consumer's seat (pq_holds).

A consumer may claim its next job while the current one runs; the job stays waiting and is held
behind the running job's lease until the transaction that records that job's outcome starts it
(docs/architecture.md, "The seat's hand-off"). Nothing is held before this migration.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from pqueue.schema import Id, Timestamp

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pq_holds",
        sa.Column("job_id", Id, primary_key=True, autoincrement=False),
        sa.Column("behind_job", Id, nullable=False),
        sa.Column("behind_lease", sa.BigInteger, nullable=False),
        sa.Column("worker_id", sa.String(200), nullable=False),
        sa.Column("held_at", Timestamp, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("pq_holds")
