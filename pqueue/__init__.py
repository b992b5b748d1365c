"""pqueue: a durable job queue for one licensed algorithm that runs one request at a time.

`connect()` opens the queue named by PQ_DATABASE_URL (a SQLite file under PQ_HOME by default).
`pqueue.callbacks.verify(...)` lets a partner check a callback's signature.
"""

from __future__ import annotations

from pqueue import callbacks
from pqueue.database import check_schema, ensure_exists, make_engine, upgrade
from pqueue.errors import (
    DatabaseBusy,
    DatabaseError,
    DatabaseFull,
    DatabaseMissing,
    DeliveryLockLost,
    IdempotencyConflict,
    InvalidInput,
    InvalidTransition,
    JobNotFound,
    LeaseLost,
    PQError,
    SchemaOutOfDate,
    SettingsError,
    StopRequested,
)
from pqueue.interface import PersistentQInterface
from pqueue.models import (
    Delivery,
    Event,
    Job,
    NewJob,
    Page,
    PutResult,
    QueueInfo,
    RunningJob,
    Stats,
    ThroughputPoint,
    Worker,
)
from pqueue.runtime import open_with_retry, setup_logging
from pqueue.settings import Settings, load_settings
from pqueue.states import CLAIMABLE, FINAL, DeliveryStatus, Status
from pqueue.store import PersistentQ, lease_margin

__all__ = [
    "CLAIMABLE",
    "FINAL",
    "DatabaseBusy",
    "DatabaseError",
    "DatabaseFull",
    "DatabaseMissing",
    "Delivery",
    "DeliveryLockLost",
    "DeliveryStatus",
    "Event",
    "IdempotencyConflict",
    "InvalidInput",
    "InvalidTransition",
    "Job",
    "JobNotFound",
    "LeaseLost",
    "NewJob",
    "PQError",
    "Page",
    "PersistentQ",
    "PersistentQInterface",
    "PutResult",
    "QueueInfo",
    "RunningJob",
    "SchemaOutOfDate",
    "Settings",
    "SettingsError",
    "Stats",
    "Status",
    "StopRequested",
    "ThroughputPoint",
    "Worker",
    "callbacks",
    "connect",
    "lease_margin",
    "load_settings",
    "migrate",
    "open_with_retry",
    "setup_logging",
]


def connect(url: str | None = None, *, settings: Settings | None = None, migrate: bool = True) -> PersistentQ:
    """Open the queue, creating the database or bringing its schema up to date under a lock, as
    a library user expects of sqlite3 or huey.

    Programs that must never create a database (`pq`, the dashboard) pass migrate=False: a
    missing SQLite file then raises DatabaseMissing and a schema at another revision raises
    SchemaOutOfDate, both telling the operator to run `pq migrate`.
    """
    settings = settings or load_settings()
    url = url or settings.resolved_database_url
    if not migrate:
        ensure_exists(url)
    engine = make_engine(url, settings)
    try:
        if migrate:
            upgrade(engine, settings.db_schema)
        else:
            check_schema(engine)
    except Exception:
        engine.dispose()
        raise
    return PersistentQ(engine, settings)


def migrate(url: str | None = None, *, settings: Settings | None = None) -> tuple[str | None, str]:
    """Create or upgrade the schema; returns (revision before, revision after)."""
    settings = settings or load_settings()
    engine = make_engine(url or settings.resolved_database_url, settings)
    try:
        return upgrade(engine, settings.db_schema)
    finally:
        engine.dispose()
