"""Errors raised by pqueue; each message says what failed, for which job, and what was expected.

PQError
 ├── SettingsError          a PQ_* variable has a bad value
 │    └── DatabaseUrlError  a database URL pqueue can never use (another database or driver, bad hosts)
 ├── DatabaseError          the database could not be used
 │    ├── DatabaseMissing   a SQLite file that is not there (pq and the dashboard never create one)
 │    ├── SchemaOutOfDate   the schema is older (or newer) than this code; run `pq migrate`
 │    ├── DatabaseBusy      the database stayed locked or unreachable past the retry deadline
 │    │    └── DatabaseReadOnly  it answers but takes no writes (a standby, or read-only by setting)
 │    └── DatabaseFull      the disk holding the database has no space left; nothing was written
 ├── JobNotFound            no job with that id
 ├── InvalidTransition      the job is not in a state the operation may start from
 ├── LeaseLost              the worker no longer holds the job (fencing)
 ├── DeliveryLockLost       the worker no longer holds the callback delivery it attempted
 ├── StopRequested          an operator cancelled or failed the running job; the worker stops it
 ├── IdempotencyConflict    the key is already used with another payload
 ├── PartnerNotFound        no partner, or no key, with that name
 ├── QueueNotFound          no queue with that name (or none that a go could mean)
 ├── AmbiguousQueue         several queues a request could mean; it must name one
 ├── KeyRejected            an API key that is malformed, unknown, revoked, expired or disabled
 └── InvalidInput           an argument was rejected before touching the database

PermanentError is not a PQError: an algorithm raises it (or marks any exception with
`permanent(exc)`) for an input that can never succeed, so the job goes to manual_intervention
at once instead of spending its retries.
"""

from __future__ import annotations

from typing import TypeVar

E = TypeVar("E", bound=BaseException)


class PQError(Exception):
    """Base of every pqueue error."""


class SettingsError(PQError):
    """A PQ_* environment variable has a value that cannot be used."""


class DatabaseUrlError(SettingsError):
    """The database URL (PQ_DATABASE_URL, --database-url) names a database pqueue cannot use:
    a configuration error, never retried as if the database were down."""


class DatabaseError(PQError):
    """The database could not be used."""


class DatabaseMissing(DatabaseError):
    """The database does not exist and this program does not create one."""

    def __init__(self, path: str) -> None:
        self.path = path
        super().__init__(
            f"database {path} does not exist; set PQ_DATABASE_URL (or --database-url) to the "
            "right one, or create it with `pq migrate`"
        )


class SchemaOutOfDate(DatabaseError):
    """The database schema is at another revision than this code needs."""

    def __init__(self, found: str | None, needed: str) -> None:
        self.found = found
        self.needed = needed
        where = "has no pqueue schema" if found is None else f"is at schema revision {found}"
        super().__init__(f"database {where}; this code needs {needed}; run `pq migrate`")


class DatabaseBusy(DatabaseError):
    """The database stayed locked or unreachable past the retry deadline."""


class DatabaseReadOnly(DatabaseBusy):
    """The database answers but takes no writes: a standby (hot standby, or a primary being
    demoted), or default_transaction_read_only. Every program waits for a writable primary."""


class DatabaseFull(DatabaseError):
    """The disk holding the database has no space left: the transaction was rolled back, and
    nothing can be stored until an operator frees space (waiting a moment does not help)."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"the database's disk is full ({reason}); nothing was written: free space on it, then retry")


SQLITE_FULL = 13  # sqlite3.SQLITE_FULL: "database or disk is full"
POSTGRES_DISK_FULL = "53100"  # SQLSTATE disk_full


def driver_message(exc: BaseException) -> str:
    """The driver's whole message on one line: psycopg puts each host a multi-host URL named on a
    line of its own, and the refused connection to a dead primary is on the second."""
    orig = getattr(exc, "orig", None)
    if orig is None:  # SQLAlchemy's own text goes on with the statement and a link: its first line
        lines = str(exc).strip().splitlines()
        return lines[0] if lines else type(exc).__name__
    return " ".join(str(orig).split()) or type(orig).__name__


def is_disk_full(driver_error: object) -> bool:
    """True for a driver error that says the database's disk is full (SQLite or PostgreSQL)."""
    code = getattr(driver_error, "sqlite_errorcode", None)
    return (isinstance(code, int) and code & 0xFF == SQLITE_FULL) or (
        getattr(driver_error, "sqlstate", None) == POSTGRES_DISK_FULL
    )


class JobNotFound(PQError):
    """No job has this id."""

    def __init__(self, job_id: int) -> None:
        self.job_id = job_id
        super().__init__(f"job {job_id} not found")


class InvalidTransition(PQError):
    """The job's status does not allow the operation."""

    def __init__(self, job_id: int, status: str, operation: str, allowed: str) -> None:
        self.job_id = job_id
        self.status = status
        self.operation = operation
        super().__init__(f"job {job_id} is {status}; {operation} needs {allowed}")


class LeaseLost(PQError):
    """The worker's lease on the job is gone: expired and rescued, cancelled, or re-claimed."""

    def __init__(self, job_id: int, lease_id: int, status: str) -> None:
        self.job_id = job_id
        self.lease_id = lease_id
        self.status = status
        super().__init__(f"job {job_id}: lease {lease_id} is no longer held (job is {status})")


class HoldGone(PQError):
    """The job held behind a lease can no longer start (an operator cancelled or failed it
    meanwhile); nothing was recorded, so the seat stays the running job's until its process
    and the held one are gone."""

    def __init__(self, job_id: int, lease_id: int) -> None:
        self.job_id = job_id
        self.lease_id = lease_id
        super().__init__(f"job {job_id} is no longer held behind lease {lease_id}: it cannot start")


class DeliveryLockLost(PQError):
    """Another worker claimed the callback delivery after this one's lock ran out (or an operator
    reset it): this worker's outcome is stale, and the current holder's will be recorded."""

    def __init__(self, delivery_id: int, worker_id: str) -> None:
        self.delivery_id = delivery_id
        self.worker_id = worker_id
        super().__init__(f"delivery {delivery_id} is no longer held by {worker_id}; its outcome was not recorded")


class StopRequested(PQError):
    """An operator asked the worker to stop the running job (cancel or fail)."""

    def __init__(self, job_id: int, target: str, reason: str | None) -> None:
        self.job_id = job_id
        self.target = target
        self.reason = reason
        super().__init__(f"job {job_id}: operator asked to stop it ({target}: {reason or '-'})")


class IdempotencyConflict(PQError):
    """The idempotency key was already used for a different payload."""

    def __init__(self, key: str, queue: str, job_id: int) -> None:
        self.key = key
        self.job_id = job_id
        super().__init__(
            f"idempotency key {key!r} in queue {queue!r} is already used by job {job_id} with a different payload"
        )


class QueueNotFound(PQError):
    """No queue has this name, or no queue is the one an unnamed request means."""

    def __init__(self, queue: str | None, message: str) -> None:
        self.queue = queue
        super().__init__(message)


class AmbiguousQueue(PQError):
    """An unnamed request could mean any of several queues."""

    def __init__(self, queues: list[str], message: str) -> None:
        self.queues = queues
        super().__init__(message)


class PartnerNotFound(PQError):
    """No partner (or no key) has this name."""

    def __init__(self, what: str, name: str) -> None:
        self.name = name
        super().__init__(f"{what} {name!r} not found")


class KeyRejected(PQError):
    """The key does not let its bearer in; the message says why, in the bearer's terms."""


class InvalidInput(PQError):
    """An argument was rejected before the database was touched."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")


class PermanentError(Exception):
    """The algorithm refused an input that can never succeed: no retry, straight to manual_intervention."""

    # What the consumer's job process looks for (it does not import pqueue to ask isinstance).
    pq_permanent = True


PermanentError.__module__ = "pqueue"  # tracebacks, and so what partners read, say pqueue.PermanentError


def permanent(exc: E) -> E:
    """Mark an exception as permanent and return it: `raise permanent(ValueError("…"))` keeps
    its type, so the partner reads `ValueError: …`, and the job spends no retry."""
    exc.pq_permanent = True  # type: ignore[attr-defined]
    return exc
