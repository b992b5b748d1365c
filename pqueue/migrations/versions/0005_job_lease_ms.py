"""Each claim records the lease length it was given (the queue's stored lease, else the claimer's).

A rescuer then waits out the lease a job was really claimed with, even after `pq queue set --lease`
changed the queue's lease while the job ran. In milliseconds, an integer: the claim's RETURNING
is read by pqueue's direct statements, which take integers as the driver gives them. NULL for jobs
claimed before this revision.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("pq_jobs") as batch:
        batch.add_column(sa.Column("lease_ms", sa.BigInteger, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("pq_jobs") as batch:
        batch.drop_column("lease_ms")
