"""A job a relay sent to agents keeps what their side said of it: queued or processing.

pq_jobs.agent_status holds the word for the current claim (NULL for a claim no relay sent, and
for every job stored before): `queued` once the broker confirmed the job's message, `processing`
once an agent reported it. `GET /jobs/{id}`, `pq show`, `pq list` and the dashboard show it.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("pq_jobs") as batch:
        batch.add_column(sa.Column("agent_status", sa.String(16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("pq_jobs") as batch:
        batch.drop_column("agent_status")
