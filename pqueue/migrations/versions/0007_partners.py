"""Partners: several callers share the licence, each with its own keys and its fair share.

- pq_partners: a named caller with a weight, an optional cap on its running jobs per queue, an
  optional submission rate, and its own callback secret (with the previous one during a rotation).
  `default` exists from the start: every job stored before this revision is its job.
- pq_api_keys: a partner's keys, stored as the SHA-256 digest only, with scopes and expiry.
- pq_partner_events: every change to a partner or a key (who, when, what).
- pq_fair: each partner's seat time per queue, in seat-seconds per unit of weight (its tag), and
  pq_queues.vtime, the queue's virtual time: the tag of the last partner given a seat.
- pq_jobs.partner, with the claim index led by it, and idempotency keys unique per partner.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from pqueue.schema import Timestamp

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

WAITING = sa.text("status IN ('unprocessed', 'crashed')")


def upgrade() -> None:
    op.create_table(
        "pq_partners",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("weight", sa.Float, nullable=False, server_default="1"),
        sa.Column("max_running", sa.Integer, nullable=True),
        sa.Column("rate_per_minute", sa.Integer, nullable=True),
        sa.Column("callback_secret", sa.Text, nullable=True),
        sa.Column("previous_callback_secret", sa.Text, nullable=True),
        sa.Column("previous_secret_until", Timestamp, nullable=True),
        sa.Column("disabled_at", Timestamp, nullable=True),
        sa.Column("created_at", Timestamp, nullable=False),
    )
    sqlite = op.get_bind().dialect.name == "sqlite"
    now = "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)" if sqlite else "now()"  # as Timestamp stores it
    op.execute(f"INSERT INTO pq_partners (name, created_at) VALUES ('default', {now})")
    op.create_table(
        "pq_api_keys",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("partner", sa.String(64), sa.ForeignKey("pq_partners.name"), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False, unique=True),
        sa.Column("scopes", sa.String(100), nullable=False),
        sa.Column("name", sa.Text, nullable=True),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("expires_at", Timestamp, nullable=True),
        sa.Column("revoked_at", Timestamp, nullable=True),
        sa.Column("last_used_at", Timestamp, nullable=True),
    )
    op.create_table(
        "pq_partner_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("partner", sa.String(64), nullable=False),
        sa.Column("at", Timestamp, nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("message", sa.Text, nullable=False),
    )
    op.create_index("ix_pq_partner_events_partner", "pq_partner_events", ["partner", "id"])
    op.create_table(
        "pq_fair",
        sa.Column("queue", sa.String(200), primary_key=True),
        sa.Column("partner", sa.String(64), primary_key=True),
        sa.Column("tag", sa.Float, nullable=False, server_default="0"),
    )
    with op.batch_alter_table("pq_queues") as batch:
        batch.add_column(sa.Column("vtime", sa.Float, nullable=False, server_default="0"))
    op.drop_index("ix_pq_jobs_claim", table_name="pq_jobs")
    with op.batch_alter_table("pq_jobs") as batch:
        batch.add_column(sa.Column("partner", sa.String(64), nullable=False, server_default="default"))
        batch.drop_constraint("uq_pq_jobs_queue_idempotency_key", type_="unique")
        batch.create_unique_constraint("uq_pq_jobs_partner_idempotency_key", ["partner", "queue", "idempotency_key"])
    op.create_index(
        "ix_pq_jobs_claim",
        "pq_jobs",
        ["queue", "partner", "priority", "id"],
        sqlite_where=WAITING,
        postgresql_where=WAITING,
    )


def downgrade() -> None:
    op.drop_index("ix_pq_jobs_claim", table_name="pq_jobs")
    with op.batch_alter_table("pq_jobs") as batch:
        batch.drop_constraint("uq_pq_jobs_partner_idempotency_key", type_="unique")
        batch.create_unique_constraint("uq_pq_jobs_queue_idempotency_key", ["queue", "idempotency_key"])
        batch.drop_column("partner")
    op.create_index(
        "ix_pq_jobs_claim", "pq_jobs", ["queue", "priority", "id"], sqlite_where=WAITING, postgresql_where=WAITING
    )
    with op.batch_alter_table("pq_queues") as batch:
        batch.drop_column("vtime")
    op.drop_table("pq_fair")
    op.drop_index("ix_pq_partner_events_partner", table_name="pq_partner_events")
    op.drop_table("pq_partner_events")
    op.drop_table("pq_api_keys")
    op.drop_table("pq_partners")
