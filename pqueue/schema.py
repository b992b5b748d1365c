"""pqueue's tables. Alembic migrations create them; a test checks the two agree."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, TIMESTAMP
from sqlalchemy.types import TypeDecorator, TypeEngine


class Timestamp(TypeDecorator[datetime]):
    """UTC time: `timestamptz` on PostgreSQL, integer epoch milliseconds on SQLite.

    SQLite has no time type; integers compare exactly and match the store's clock expression.
    """

    impl = BigInteger
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(TIMESTAMP(timezone=True))
        return dialect.type_descriptor(BigInteger())

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None or dialect.name == "postgresql":
            return value
        return int(value.timestamp() * 1000)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, datetime):
            return value.astimezone(UTC)
        return datetime.fromtimestamp(value / 1000, tz=UTC)


Json = JSON().with_variant(JSONB(), "postgresql")
# SQLite only makes INTEGER PRIMARY KEY an alias of rowid; PostgreSQL gets a bigint identity.
Id = BigInteger().with_variant(Integer(), "sqlite")

metadata = MetaData()

jobs = Table(
    "pq_jobs",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("queue", String(200), nullable=False),
    Column("payload", Json, nullable=True),
    Column("payload_hash", String(64), nullable=False),  # digest for idempotency keys; "" without one
    Column("status", String(32), nullable=False),
    Column("priority", Integer, nullable=False, server_default="0"),
    Column("attempts", Integer, nullable=False, server_default="0"),
    # The attempts the job may take: its submitter's own limit when max_attempts_given, else its
    # queue's stored policy, which every claim copies in (so an operator's change reaches waiting jobs).
    Column("max_attempts", Integer, nullable=False),
    Column("max_attempts_given", Boolean, nullable=True),
    # Grows by one on every claim and never goes back: the fencing token.
    Column("lease_id", BigInteger, nullable=False, server_default="0"),
    Column("worker_id", String(200), nullable=True),
    Column("lease_expires_at", Timestamp, nullable=True),
    # The latest claim's lease length in milliseconds, which its heartbeats keep (NULL before 0005).
    Column("lease_ms", BigInteger, nullable=True),
    # How many of its runs ended at the job timeout (since its last requeue): its queue's
    # timeout_retries says how many of those it may run again after (0008).
    Column("timeouts", Integer, nullable=False, server_default="0"),
    Column("stop_request", String(32), nullable=True),
    # What the agents' side last said of the current claim when a relay sent it (AgentStatus:
    # queued, processing); every claim clears it, and it means nothing once the job left under_process (0013).
    Column("agent_status", String(16), nullable=True),
    Column("stop_reason", Text, nullable=True),
    Column("result", Json, nullable=True),
    # The last error a run (or a lease's end) recorded; an operator's fail keeps it (0009).
    Column("error", Text, nullable=True),
    # Why an operator failed the job (`pq fail --reason`): set only by a fail, cleared by requeue (0009).
    Column("operator_reason", Text, nullable=True),
    Column("callback_url", Text, nullable=True),
    Column("idempotency_key", String(200), nullable=True),
    Column("created_at", Timestamp, nullable=False),
    Column("run_after", Timestamp, nullable=False),
    Column("started_at", Timestamp, nullable=True),
    Column("finished_at", Timestamp, nullable=True),
    # Whose job it is: the partner whose key submitted it (`default` without keys).
    Column("partner", String(64), nullable=False, server_default="default"),
    UniqueConstraint("partner", "queue", "idempotency_key", name="uq_pq_jobs_partner_idempotency_key"),
    # SQLite: a purged job's id is never given again (without it, the largest id plus one). On
    # PostgreSQL the id's default also puts the server's timeline in its high bits (pqueue/sql/ids.py).
    sqlite_autoincrement=True,
)
# The claim takes each partner's next job with one step down this partial index (in run order
# within the partner); finished jobs are not in it, so its cost stays flat however many pile up.
# run_after rides along (after the unique id: no order changes) so the step needs no row fetch.
Index(
    "ix_pq_jobs_claim",
    jobs.c.queue,
    jobs.c.partner,
    jobs.c.priority,
    jobs.c.id,
    jobs.c.run_after,
    sqlite_where=text("status IN ('unprocessed', 'crashed')"),
    postgresql_where=text("status IN ('unprocessed', 'crashed')"),
)
# Seat counting and rescue look only at running jobs.
Index(
    "ix_pq_jobs_running",
    jobs.c.queue,
    jobs.c.lease_expires_at,
    sqlite_where=text("status = 'under_process'"),
    postgresql_where=text("status = 'under_process'"),
)
# Purge and run durations ask for a finished_at range, so unfinished jobs need no entry here
# (one index entry fewer to write for every job put).
Index(
    "ix_pq_jobs_status_finished",
    jobs.c.status,
    jobs.c.finished_at,
    sqlite_where=text("finished_at IS NOT NULL"),
    postgresql_where=text("finished_at IS NOT NULL"),
)
Index("ix_pq_jobs_status_id", jobs.c.status, jobs.c.id)

# A job claimed ahead for a consumer's seat (the seat's hand-off, docs/architecture.md): the job
# stays waiting, its attempt not counted, and no claim takes it while the lease it waits behind
# (`behind_lease`, of the job `behind_job`) is still a running job's. It starts by
# `finish_and_start`, in the transaction that records that job's outcome; a hold whose lease
# ended otherwise has lapsed: it stays, as the mark of a job that is never held again, until
# its job is final and a hold deletes it (0016).
holds = Table(
    "pq_holds",
    metadata,
    Column("job_id", Id, primary_key=True, autoincrement=False),
    Column("behind_job", Id, nullable=False),
    Column("behind_lease", BigInteger, nullable=False),
    Column("worker_id", String(200), nullable=False),
    Column("held_at", Timestamp, nullable=False),
)

events = Table(
    "pq_events",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("job_id", BigInteger, ForeignKey("pq_jobs.id", ondelete="CASCADE"), nullable=False),
    Column("from_status", String(32), nullable=True),
    Column("to_status", String(32), nullable=False),
    Column("at", Timestamp, nullable=False),
    Column("actor", String(200), nullable=False),
    Column("message", Text, nullable=True),
)
Index("ix_pq_events_job", events.c.job_id, events.c.id)
Index("ix_pq_events_to_at", events.c.to_status, events.c.at)

queues = Table(
    "pq_queues",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("seats", Integer, nullable=True),
    Column("paused", Boolean, nullable=False, server_default=text("false")),
    # Since when and by whom (admin, dashboard, relay) it is paused, for a waiting job's reasons (0012).
    Column("paused_at", Timestamp, nullable=True),
    Column("paused_by", String(200), nullable=True),
    # The queue's policy, stored from the PQ_ defaults of the first consumer or relay that serves it
    # (adopt_queue); NULL only where nothing has served it yet: then the reading program's PQ_ default.
    Column("max_attempts", Integer, nullable=True),
    Column("job_timeout", Float, nullable=True),
    Column("lease_seconds", Float, nullable=True),
    Column("retry_backoff_seconds", Float, nullable=True),
    Column("timeout_retries", Integer, nullable=True),
    # The queue's virtual time for the fair share: the tag of the partner last given a seat. A
    # partner that comes back after an idle spell starts here, so idle time is never banked.
    Column("vtime", Float, nullable=False, server_default="0"),
)

partners = Table(
    "pq_partners",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("weight", Float, nullable=False, server_default="1"),
    # At most this many of its jobs run at once in each queue (NULL: only the seats limit it).
    Column("max_running", Integer, nullable=True),
    Column("rate_per_minute", Integer, nullable=True),
    # Signs its callbacks (else PQ_CALLBACK_SECRET); during a rotation the previous one signs too.
    Column("callback_secret", Text, nullable=True),
    Column("previous_callback_secret", Text, nullable=True),
    Column("previous_secret_until", Timestamp, nullable=True),
    Column("disabled_at", Timestamp, nullable=True),
    Column("created_at", Timestamp, nullable=False),
)

api_keys = Table(
    "pq_api_keys",
    metadata,
    Column("id", String(32), primary_key=True),  # the key's public part, shown in listings
    Column("partner", String(64), ForeignKey("pq_partners.name"), nullable=False),
    Column("digest", String(64), nullable=False, unique=True),  # SHA-256 of the whole key; never the key
    Column("scopes", String(100), nullable=False),  # comma-separated: submit, read, cancel, admin
    Column("name", Text, nullable=True),
    Column("created_at", Timestamp, nullable=False),
    Column("expires_at", Timestamp, nullable=True),
    Column("revoked_at", Timestamp, nullable=True),
    Column("last_used_at", Timestamp, nullable=True),
)

partner_events = Table(
    "pq_partner_events",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("partner", String(64), nullable=False),
    Column("at", Timestamp, nullable=False),
    Column("actor", String(200), nullable=False),
    Column("message", Text, nullable=False),
)
Index("ix_pq_partner_events_partner", partner_events.c.partner, partner_events.c.id)

# What the submitter's view predicted for a job shortly after it was submitted (a sample of the
# jobs, recorded by the intake), so that the share of jobs that started before their p90 can be
# told (0014). Gone with its job.
predictions = Table(
    "pq_predictions",
    metadata,
    Column("job_id", BigInteger, ForeignKey("pq_jobs.id", ondelete="CASCADE"), primary_key=True),
    Column("queue", String(200), nullable=False),
    Column("predicted_at", Timestamp, nullable=False),
    Column("start_p50", Timestamp, nullable=True),
    Column("start_p90", Timestamp, nullable=True),
    Column("start_latest", Timestamp, nullable=True),
)
Index("ix_pq_predictions_at", predictions.c.predicted_at)

# Each partner's tag in each queue: the seat-seconds its runs held, divided by its weight (start-time
# fair queuing). The claim gives the seat to the lowest tag; every run's outcome adds its seconds.
fair = Table(
    "pq_fair",
    metadata,
    Column("queue", String(200), primary_key=True),
    Column("partner", String(64), primary_key=True),
    Column("tag", Float, nullable=False, server_default="0"),
)

workers = Table(
    "pq_workers",
    metadata,
    Column("id", String(200), primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("queue", String(200), nullable=False),
    Column("started_at", Timestamp, nullable=False),
    Column("last_seen", Timestamp, nullable=False),
)

deliveries = Table(
    "pq_deliveries",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("job_id", BigInteger, ForeignKey("pq_jobs.id", ondelete="CASCADE"), nullable=False),
    Column("lease_id", BigInteger, nullable=False),
    Column("url", Text, nullable=False),
    Column("body", Text, nullable=False),
    Column("status", String(32), nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("last_status_code", Integer, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("created_at", Timestamp, nullable=False),
    Column("next_attempt_at", Timestamp, nullable=False),
    Column("last_attempt_at", Timestamp, nullable=True),
    Column("delivered_at", Timestamp, nullable=True),
    # Set while one worker sends it, so two consumers never send it at the same time.
    Column("locked_by", String(200), nullable=True),
    Column("locked_until", Timestamp, nullable=True),
)
Index("ix_pq_deliveries_job", deliveries.c.job_id, deliveries.c.id)
Index("ix_pq_deliveries_due", deliveries.c.status, deliveries.c.next_attempt_at)
