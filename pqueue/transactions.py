"""Transactions: reads, writes retried while the database is briefly locked, driver errors turned
into pqueue's, and `Tx`, the state one write transaction carries between the steps it runs.

A `Tx` holds the connection, the queues whose seat lock it holds (PostgreSQL's advisory lock,
taken once per transaction) and the queues whose waiting consumers it must wake (one NOTIFY per
queue, sent just before COMMIT). So an operation that finishes a job and claims the next is just
the two steps in one `Tx`: the claim finds the seat lock held, and no wake-up goes out for a seat
the transaction took again itself. On SQLite there is neither lock nor NOTIFY to send: BEGIN
IMMEDIATE holds the write lock, and waiting consumers watch the file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_random

from pqueue.dialects import seat_lock_key
from pqueue.direct import DirectStatement
from pqueue.errors import DatabaseBusy, DatabaseError, DatabaseFull, DatabaseReadOnly, driver_message, is_disk_full

T = TypeVar("T")

# How long a writer keeps retrying a locked database (beyond SQLite's own busy timeout, which
# is PQ_WRITE_TIMEOUT) before it gives up with DatabaseBusy; a shorter PQ_WRITE_TIMEOUT caps it.
WRITE_RETRY_SECONDS = 10.0
READ_ONLY_SQL_TRANSACTION = "25006"  # SQLSTATE of a write on a standby


def is_transient(exc: BaseException) -> bool:
    """Errors after which the whole transaction can safely run again (nothing was committed)."""
    if not isinstance(exc, DBAPIError):
        return False
    message = str(exc.orig).lower()
    sqlstate = getattr(exc.orig, "sqlstate", None)
    return (
        "database is locked" in message
        or "database table is locked" in message
        or sqlstate
        in (
            "40001",  # serialization_failure
            "40P01",  # deadlock_detected
        )
    )


def translate(exc: SQLAlchemyError) -> DatabaseError:
    """The pqueue error for a SQLAlchemy or driver error, with the driver's whole message."""
    message = driver_message(exc)
    if is_disk_full(getattr(exc, "orig", None)):
        return DatabaseFull(message)
    if is_transient(exc):
        return DatabaseBusy(f"database stayed locked: {message}")
    if is_read_only(exc):
        return DatabaseReadOnly(f"database takes no writes: {message}; waiting for a writable primary")
    if isinstance(exc, DBAPIError) and exc.connection_invalidated or "connect" in message.lower():
        return DatabaseBusy(f"database unreachable: {message}")
    return DatabaseError(f"database error: {message}")


def is_read_only(exc: BaseException) -> bool:
    """A write refused by a standby, or by default_transaction_read_only."""
    return getattr(getattr(exc, "orig", None), "sqlstate", None) == READ_ONLY_SQL_TRANSACTION


class Tx:
    """One write transaction: its connection, the seat locks it holds, the wake-ups it owes."""

    def __init__(self, conn: Connection, locks: Locks) -> None:
        self.conn = conn
        self._locks = locks
        self._seats_held: set[str] = set()
        self._wake: dict[str, bool] = {}  # queue -> a NOTIFY is still to be sent
        self.claim_expected: str | None = None

    @property
    def channel(self) -> str:
        """The channel this store's NOTIFYs go out on."""
        return self._locks.channel

    def expect_claim(self, queue: str) -> None:
        """This transaction will claim from `queue` after its first step: a statement that can take
        the queue's seat lock along (PostgreSQL's processed outcome) takes it, saving a round trip."""
        self.claim_expected = queue

    def seat_key(self, queue: str) -> int:
        """The advisory-lock key of the queue's seats."""
        return seat_lock_key(queue, self._locks.schema)

    def lock_seats(self, queue: str) -> None:
        """Serialise this transaction's claim with every other claimer of the queue (once)."""
        if queue not in self._seats_held:
            if self._locks.seat_lock is not None:
                self._locks.seat_lock.run(self.conn, {"w_key": self.seat_key(queue)})
            self._seats_held.add(queue)

    def seats_locked(self, queue: str) -> None:
        """A statement of this transaction took the queue's seat lock itself."""
        self._seats_held.add(queue)

    def wake(self, queue: str) -> None:
        """Consumers waiting on the queue should look again once this transaction commits."""
        self._wake.setdefault(queue, True)

    def woke(self, queue: str) -> None:
        """A statement of this transaction sent the queue's NOTIFY itself."""
        self._wake[queue] = False

    def seat_taken(self, queue: str) -> None:
        """This transaction claimed from the queue: the seat an earlier step freed is taken
        again, so waiting consumers have nothing to wake up for."""
        if self._wake.get(queue):
            del self._wake[queue]

    def send_wake_ups(self) -> None:
        """The NOTIFYs owed, one per queue, before COMMIT (PostgreSQL delivers them at COMMIT)."""
        wake_up = self._locks.wake_up
        if wake_up is None or not self._wake:
            return
        for queue, owed in self._wake.items():
            if owed:
                wake_up.run(self.conn, {"w_channel": self._locks.channel, "w_queue": queue})


@dataclass(frozen=True)
class Locks:
    """What a Tx runs for its seat locks and wake-ups: the statements are None on SQLite."""

    seat_lock: DirectStatement | None  # binds :w_key
    wake_up: DirectStatement | None  # binds :w_channel and :w_queue
    schema: str | None
    channel: str


class Transactions:
    """Read and write transactions on one engine."""

    def __init__(self, engine: Engine, locks: Locks, write_timeout: float) -> None:
        self.engine = engine
        self._locks = locks
        self._write_timeout = write_timeout

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read-only transaction (DEFERRED on SQLite: it never blocks a writer in WAL mode)."""
        try:
            with self.engine.connect() as conn, conn.begin():
                yield conn
        except SQLAlchemyError as exc:
            raise translate(exc) from exc

    def write(self, work: Callable[[Tx], T]) -> T:
        """Run work in one write transaction, again if the database was briefly locked (the retry
        machinery is built only after a first try failed, which is rare)."""
        try:
            return self._transaction(work)
        except SQLAlchemyError as exc:
            if not is_transient(exc):
                raise translate(exc) from exc
        return self._retried(work)

    def _transaction(self, work: Callable[[Tx], T]) -> T:
        with self.engine.connect() as conn:
            conn.execution_options(pq_begin="IMMEDIATE")
            with conn.begin():
                tx = Tx(conn, self._locks)
                result = work(tx)
                tx.send_wake_ups()
                return result

    def _retried(self, work: Callable[[Tx], T]) -> T:
        retrying = Retrying(
            retry=retry_if_exception(is_transient),
            stop=stop_after_delay(min(WRITE_RETRY_SECONDS, self._write_timeout)),
            # Steady, short, random waits: each retry has a fair chance at a lock that is busy
            # only for the milliseconds of another transaction.
            wait=wait_random(0.001, 0.006),
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    return self._transaction(work)
        except SQLAlchemyError as exc:
            raise translate(exc) from exc
        raise AssertionError("unreachable")  # pragma: no cover
