"""pqueue: a durable job queue for one licensed algorithm that runs one request at a time.

`connect()` opens the queue named by PQ_DATABASE_URL (a SQLite file under PQ_HOME by default);
`persistentQ({"name": ..., "type": "sqlite"})` opens one in the words of the first design (pqueue.original).
`pqueue.callbacks.verify(...)` lets a partner check a callback's signature.
"""

from __future__ import annotations

from pqueue import backoff, callbacks
from pqueue.errors import (
    AmbiguousQueue,
    DatabaseBusy,
    DatabaseError,
    DatabaseFull,
    DatabaseMissing,
    DatabaseReadOnly,
    DatabaseUrlError,
    DeliveryLockLost,
    HoldGone,
    IdempotencyConflict,
    InvalidInput,
    InvalidTransition,
    JobNotFound,
    KeyRejected,
    LeaseLost,
    PartnerNotFound,
    PermanentError,
    PQError,
    QueueNotFound,
    SchemaOutOfDate,
    SettingsError,
    StopRequested,
    permanent,
)
from pqueue.here import RunningSystem, forget_running, record_running, running_here
from pqueue.interface import Insights, Operations, Partners, PersistentQInterface, WorkQueue
from pqueue.models import (
    ApiKey,
    Calibration,
    Caller,
    Delivery,
    Event,
    Job,
    NewJob,
    NewKey,
    Overruled,
    Page,
    Partner,
    PartnerEvent,
    PutResult,
    QueueInfo,
    Replication,
    RunningJob,
    Stats,
    ThroughputPoint,
    Worker,
)
from pqueue.opening import connect, migrate, open_with_retry, patiently, setup_logging
from pqueue.original import persistentQ
from pqueue.partner import partner_error
from pqueue.partners import DEFAULT_PARTNER, DEFAULT_SCOPES, KEY_PREFIX, SCOPES
from pqueue.policy import lease_margin, overruled, policy_defaults
from pqueue.settings import Settings, load_settings
from pqueue.silence import SilenceWatch
from pqueue.states import CLAIMABLE, FINAL, AgentStatus, DeliveryStatus, Status
from pqueue.store import PersistentQ
from pqueue.validation import check_callback_url, duration_text
from pqueue.waitline import Estimate, Position, Reason, Wait

__all__ = [
    "backoff",
    "AmbiguousQueue",
    "QueueNotFound",
    "DEFAULT_PARTNER",
    "DEFAULT_SCOPES",
    "KEY_PREFIX",
    "SCOPES",
    "ApiKey",
    "Caller",
    "KeyRejected",
    "HoldGone",
    "NewKey",
    "Partner",
    "PartnerEvent",
    "PartnerNotFound",
    "Partners",
    "CLAIMABLE",
    "FINAL",
    "DatabaseBusy",
    "DatabaseError",
    "DatabaseFull",
    "DatabaseMissing",
    "DatabaseReadOnly",
    "DatabaseUrlError",
    "Delivery",
    "DeliveryLockLost",
    "AgentStatus",
    "DeliveryStatus",
    "Event",
    "IdempotencyConflict",
    "Insights",
    "InvalidInput",
    "InvalidTransition",
    "Job",
    "JobNotFound",
    "LeaseLost",
    "PermanentError",
    "NewJob",
    "Operations",
    "PQError",
    "Page",
    "PersistentQ",
    "PersistentQInterface",
    "PutResult",
    "QueueInfo",
    "Replication",
    "RunningJob",
    "SchemaOutOfDate",
    "Settings",
    "SilenceWatch",
    "SettingsError",
    "Stats",
    "Status",
    "StopRequested",
    "ThroughputPoint",
    "Worker",
    "WorkQueue",
    "Wait",
    "Calibration",
    "Estimate",
    "Position",
    "Reason",
    "callbacks",
    "check_callback_url",
    "connect",
    "duration_text",
    "forget_running",
    "lease_margin",
    "overruled",
    "Overruled",
    "policy_defaults",
    "load_settings",
    "migrate",
    "permanent",
    "persistentQ",
    "open_with_retry",
    "partner_error",
    "patiently",
    "record_running",
    "running_here",
    "RunningSystem",
    "setup_logging",
]
