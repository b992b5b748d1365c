"""The claim index carries each waiting job's run_after, so the fair share's pick reads a partner's
next due job from the index alone.

The pick takes one step down (queue, partner, priority, id) per partner with waiting jobs; with
run_after in the index entry, that step no longer fetches the job's row to see whether it is due
(at 1,000,000 stored jobs and 100 partners, about a seventh of a SQLite claim's time). It is the
last key column, which changes no order: the id before it is unique.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

WAITING = sa.text("status IN ('unprocessed', 'crashed')")
ORDER = ["queue", "partner", "priority", "id"]


def upgrade() -> None:
    op.drop_index("ix_pq_jobs_claim", table_name="pq_jobs")
    op.create_index(
        "ix_pq_jobs_claim", "pq_jobs", [*ORDER, "run_after"], sqlite_where=WAITING, postgresql_where=WAITING
    )


def downgrade() -> None:
    op.drop_index("ix_pq_jobs_claim", table_name="pq_jobs")
    op.create_index("ix_pq_jobs_claim", "pq_jobs", ORDER, sqlite_where=WAITING, postgresql_where=WAITING)
