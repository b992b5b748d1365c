"""Job ids are never given twice: PostgreSQL puts the server's timeline into an id's high bits.

A promoted asynchronous standby's sequence rewinds to what the standby had received, and handed
the ids of the jobs lost at the failover to new jobs. Now every id given after a promotion or a
point-in-time restore (a new timeline) is above every id given before it; on timeline 1 ids are
the same small numbers as before. See pqueue/sql/ids.py. Ids already given stay as they are.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from pqueue.sql import ids

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def _jobs_sequence() -> str | None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return None
    return str(bind.execute(sa.text(ids.SERIAL_SEQUENCE)).scalar_one())


def upgrade() -> None:
    sequence = _jobs_sequence()
    for statement in ids.timeline_ids(sequence) if sequence else []:
        op.execute(statement)


def downgrade() -> None:
    sequence = _jobs_sequence()
    for statement in ids.sequence_ids(sequence) if sequence else []:
        op.execute(statement)
