"""Jobs, their event log and per-queue settings.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from pqueue.schema import Id, Json, Timestamp

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

WAITING = sa.text("status IN ('unprocessed', 'crashed')")
RUNNING = sa.text("status = 'under_process'")


def upgrade() -> None:
    op.create_table(
        "pq_jobs",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("queue", sa.String(200), nullable=False),
        sa.Column("payload", Json, nullable=True),
        sa.Column("payload_hash", sa.String(64), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("priority", sa.Integer, nullable=False, server_default="0"),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("max_attempts", sa.Integer, nullable=False),
        sa.Column("lease_id", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("worker_id", sa.String(200), nullable=True),
        sa.Column("lease_expires_at", Timestamp, nullable=True),
        sa.Column("stop_request", sa.String(32), nullable=True),
        sa.Column("stop_reason", sa.Text, nullable=True),
        sa.Column("result", Json, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("callback_url", sa.Text, nullable=True),
        sa.Column("idempotency_key", sa.String(200), nullable=True),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("run_after", Timestamp, nullable=False),
        sa.Column("started_at", Timestamp, nullable=True),
        sa.Column("finished_at", Timestamp, nullable=True),
        sa.UniqueConstraint("queue", "idempotency_key", name="uq_pq_jobs_queue_idempotency_key"),
    )
    op.create_index(
        "ix_pq_jobs_claim",
        "pq_jobs",
        ["queue", "priority", "id"],
        sqlite_where=WAITING,
        postgresql_where=WAITING,
    )
    op.create_index(
        "ix_pq_jobs_running",
        "pq_jobs",
        ["queue", "lease_expires_at"],
        sqlite_where=RUNNING,
        postgresql_where=RUNNING,
    )
    op.create_index("ix_pq_jobs_status_finished", "pq_jobs", ["status", "finished_at"])
    op.create_index("ix_pq_jobs_status_id", "pq_jobs", ["status", "id"])
    op.create_table(
        "pq_events",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("job_id", sa.BigInteger, sa.ForeignKey("pq_jobs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("from_status", sa.String(32), nullable=True),
        sa.Column("to_status", sa.String(32), nullable=False),
        sa.Column("at", Timestamp, nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("message", sa.Text, nullable=True),
    )
    op.create_index("ix_pq_events_job", "pq_events", ["job_id", "id"])
    op.create_index("ix_pq_events_to_at", "pq_events", ["to_status", "at"])
    op.create_table(
        "pq_queues",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("seats", sa.Integer, nullable=True),
        sa.Column("paused", sa.Boolean, nullable=False, server_default=sa.text("false")),
    )


def downgrade() -> None:
    op.drop_table("pq_queues")
    op.drop_table("pq_events")
    op.drop_table("pq_jobs")
