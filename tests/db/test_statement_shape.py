"""The statements each hot operation runs, pinned per backend: moving the SQL around must keep
the hot path's shape (the same statements, as many of them, in as many round trips).

Each operation is watched twice. pqueue's own two ways of running a statement are recorded
(`DirectStatement.run`, and SQLAlchemy's `before_cursor_execute` for `Connection.execute`),
with the transaction's begin and commit. The driver is watched too (SQLite's trace callback,
libpq's protocol trace on PostgreSQL), so a statement that bypassed both would still be counted.
A statement is named by what it writes and locks ("update pq_jobs, insert pq_events"), and by
how it ran: "direct" statements are compiled once, "execute" ones go through SQLAlchemy.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from psycopg import pq
from sqlalchemy import event

from pqueue import Job, NewJob, PersistentQ, Status
from pqueue.direct import DirectStatement

pytestmark = pytest.mark.timeout(120)

_PARTS = re.compile(
    r"\b(?:(INSERT INTO|UPDATE|DELETE FROM) (\w+)|(pg_advisory_xact_lock|pg_notify)\(|(FOR UPDATE(?: SKIP LOCKED)?)"
    r"|(ON CONFLICT))"
)

_SUBQUERY = re.compile(r"\(SELECT [^()]*\)")


def summary(sql: str) -> str:
    """What a statement writes and locks, in order: 'update pq_jobs, insert pq_events'."""
    words = " ".join(sql.split())
    parts = []
    for match in _PARTS.finditer(words):
        verb, table, call, lock, conflict = match.groups()
        if verb:
            parts.append(f"{verb.split()[0].lower()} {table}")
        else:
            parts.append((call or lock or conflict).lower())
    if not parts:  # a plain read, named by its own table, not a scalar subquery's
        outer = words
        while (inner := _SUBQUERY.sub("", outer)) != outer:
            outer = inner
        found = re.search(r"\bFROM (\w+)", outer)
        parts.append(f"select {found.group(1)}" if found else "select")
    return ", ".join(parts)


class Recorder:
    """The statements one store sends, as pqueue ran them and as the driver saw them."""

    def __init__(self, store: PersistentQ, trace_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.backend = store.engine.dialect.name
        self.ran: list[str] = []
        self.sql: list[str] = []  # the same, as text
        self.driver: list[str] = []  # SQLite: each statement; PostgreSQL: libpq's protocol messages
        self._trace_file = trace_file
        engine = store.engine
        engine.dispose()  # every connection from here on is watched from its start
        run = DirectStatement.run

        def recorded_run(statement: DirectStatement, conn: Any, params: Any) -> list[Any]:
            self._record("direct", statement.sql)
            return run(statement, conn, params)

        monkeypatch.setattr(DirectStatement, "run", recorded_run)
        event.listen(engine, "before_cursor_execute", self._executed)
        event.listen(engine, "begin", lambda _conn: self._record("", "BEGIN"))
        event.listen(engine, "commit", lambda _conn: self._record("", "COMMIT"))
        if self.backend == "sqlite":
            event.listen(engine, "connect", lambda dbapi, _record: dbapi.set_trace_callback(self.driver.append))
        else:
            event.listen(engine, "checkout", self._trace)
            event.listen(engine, "checkin", self._untrace)

    def _record(self, how: str, sql: str) -> None:
        self.ran.append(f"{how}: {summary(sql)}" if how else sql)
        self.sql.append(sql)

    def _executed(self, _conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        self._record("execute", statement)

    def _trace(self, dbapi: Any, _record: Any, _proxy: Any) -> None:
        self._trace_fd = open(self._trace_file, "a")  # noqa: SIM115 - closed at checkin
        dbapi.pgconn.trace(self._trace_fd.fileno())
        dbapi.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS | pq.Trace.REGRESS_MODE)

    def _untrace(self, dbapi: Any, _record: Any) -> None:
        if dbapi is not None:
            dbapi.pgconn.untrace()  # flushes what libpq wrote
        self._trace_fd.close()

    def watch(self, operation: Callable[[], Any]) -> list[str]:
        """Run operation; the statements pqueue ran for it, checked against what the driver saw."""
        self.ran.clear()
        self.sql.clear()
        self.driver.clear()
        self._trace_file.write_text("")
        operation()
        assert self.ran.count("BEGIN") == 1, f"one transaction per operation, not {self.ran}"
        if self.backend == "sqlite":
            assert [sql.split()[0] for sql in self.driver] == [sql.split()[0] for sql in self.sql], self.driver
            assert self.driver[0] == "BEGIN IMMEDIATE", "a write takes SQLite's write lock first"
        else:
            assert self.round_trips() == len(self.ran), f"{self.round_trips()} round trips for {self.ran}"
        return self.ran

    def round_trips(self) -> int:
        """PostgreSQL: messages after which the client waits for the server (a simple Query, or
        the Sync that ends an extended-protocol statement), from BEGIN to COMMIT."""
        sent = [line.split("\t") for line in self._trace_file.read_text().splitlines() if line.startswith("F\t")]
        waits = [fields[3].strip() if fields[2] == "Query" else "" for fields in sent if fields[2] in ("Query", "Sync")]
        begin, commit = waits.index('"BEGIN"'), len(waits) - 1 - waits[::-1].index('"COMMIT"')
        return commit - begin + 1


def claimed(store: PersistentQ, **put: Any) -> Job:
    store.put_item({"n": 1}, **put)
    job = store.get_item("w")
    assert job is not None
    return job


def _put_item(q: PersistentQ) -> Callable[[], Any]:
    return lambda: q.put_item({"n": 1})


def _put_item_keyed(q: PersistentQ) -> Callable[[], Any]:
    return lambda: q.put_item({"n": 1}, idempotency_key="k")


def _put_items_alike(q: PersistentQ) -> Callable[[], Any]:
    return lambda: q.put_items([NewJob({"n": n}) for n in range(3)])


def _put_items_mixed(q: PersistentQ) -> Callable[[], Any]:
    return lambda: q.put_items([NewJob({"n": n}, priority=n) for n in range(3)])


def _get_item(q: PersistentQ) -> Callable[[], Any]:
    q.put_item({"n": 1})
    return lambda: q.get_item("w")


def _get_item_nothing(q: PersistentQ) -> Callable[[], Any]:
    return lambda: q.get_item("w")


def _heartbeat(q: PersistentQ) -> Callable[[], Any]:
    job = claimed(q)
    return lambda: q.heartbeat(job.id, job.lease_id)


def _update_status_processed(q: PersistentQ) -> Callable[[], Any]:
    job = claimed(q)
    return lambda: q.update_status(job.id, Status.PROCESSED, lease_id=job.lease_id, result={"ok": True})


def _update_status_processed_callback(q: PersistentQ) -> Callable[[], Any]:
    job = claimed(q, callback_url="http://127.0.0.1:9/cb")
    return lambda: q.update_status(job.id, Status.PROCESSED, lease_id=job.lease_id, result={"ok": True})


def _update_status_crashed(q: PersistentQ) -> Callable[[], Any]:
    job = claimed(q)
    return lambda: q.update_status(job.id, Status.CRASHED, lease_id=job.lease_id, error="boom")


def _finish_and_claim(q: PersistentQ) -> Callable[[], Any]:
    job = claimed(q)
    q.put_item({"n": 2})
    return lambda: q.finish_and_claim(job.id, Status.PROCESSED, lease_id=job.lease_id, worker_id="w")


def _finish_and_claim_nothing(q: PersistentQ) -> Callable[[], Any]:
    job = claimed(q)
    return lambda: q.finish_and_claim(job.id, Status.PROCESSED, lease_id=job.lease_id, worker_id="w")


def _finish_and_claim_crashed(q: PersistentQ) -> Callable[[], Any]:
    job = claimed(q)
    q.put_item({"n": 2})
    return lambda: q.finish_and_claim(job.id, Status.CRASHED, lease_id=job.lease_id, worker_id="w", error="boom")


def _rescue(q: PersistentQ) -> Callable[[], Any]:
    claimed(q)
    q.clock_offset += timedelta(seconds=q.settings.lease_seconds * 2)
    return lambda: q.rescue_expired()


# PostgreSQL's claim: candidate, claim, event row and the fair share's bookkeeping in one statement.
PG_CLAIM = (
    "direct: for update skip locked, update pq_jobs, insert pq_events,"
    " insert pq_fair, on conflict, update SET, insert pq_queues, on conflict, update SET"
)

# What each operation sent, per backend. On SQLite every BEGIN is BEGIN IMMEDIATE; on PostgreSQL
# BEGIN, each statement and COMMIT is one round trip each (nothing is pipelined).
EXPECTED: dict[str, tuple[Callable[[PersistentQ], Callable[[], Any]], dict[str, list[str]]]] = {
    "put_item": (
        _put_item,
        {
            # the jobs from one JSON array, then their creation events
            "sqlite": ["BEGIN", "direct: insert pq_jobs", "direct: insert pq_events", "COMMIT"],
            # one statement: jobs, events and the wake-up
            "postgresql": ["BEGIN", "direct: insert pq_jobs, insert pq_events, pg_notify", "COMMIT"],
        },
    ),
    "put_item with an idempotency key": (
        _put_item_keyed,
        {
            "sqlite": ["BEGIN", "execute: insert pq_jobs, on conflict", "direct: insert pq_events", "COMMIT"],
            "postgresql": [
                "BEGIN",
                "execute: insert pq_jobs, on conflict",
                "direct: insert pq_events",
                "direct: pg_notify",
                "COMMIT",
            ],
        },
    ),
    "put_items, alike": (
        _put_items_alike,
        {
            "sqlite": ["BEGIN", "direct: insert pq_jobs", "direct: insert pq_events", "COMMIT"],
            "postgresql": ["BEGIN", "direct: insert pq_jobs, insert pq_events, pg_notify", "COMMIT"],
        },
    ),
    "put_items, mixed": (
        _put_items_mixed,
        {
            "sqlite": ["BEGIN", "direct: insert pq_jobs", "direct: insert pq_events", "COMMIT"],
            # mixed queues: the wake-up is a statement of its own, per queue
            "postgresql": ["BEGIN", "direct: insert pq_jobs, insert pq_events", "direct: pg_notify", "COMMIT"],
        },
    ),
    "get_item": (
        _get_item,
        {
            # the pick writes the claim's event, then the fenced UPDATE, then the fair share's
            # bookkeeping: the partner's tag floored at the queue's virtual time, which moves on
            "sqlite": [
                "BEGIN",
                "direct: insert pq_events",
                "direct: update pq_jobs",
                "direct: insert pq_fair, on conflict, update SET",
                "direct: insert pq_queues, on conflict, update SET",
                "COMMIT",
            ],
            # the seat lock, then candidate, claim, event and fair share in one statement
            "postgresql": ["BEGIN", "direct: pg_advisory_xact_lock", PG_CLAIM, "COMMIT"],
        },
    ),
    "get_item, nothing to claim": (
        _get_item_nothing,
        {
            "sqlite": ["BEGIN", "direct: insert pq_events", "COMMIT"],
            "postgresql": ["BEGIN", "direct: pg_advisory_xact_lock", PG_CLAIM, "COMMIT"],
        },
    ),
    "heartbeat": (
        _heartbeat,
        {
            "sqlite": ["BEGIN", "execute: update pq_jobs", "COMMIT"],
            "postgresql": ["BEGIN", "execute: update pq_jobs", "COMMIT"],
        },
    ),
    "update_status processed": (
        _update_status_processed,
        {
            # the run's seat time is charged to its partner
            "sqlite": [
                "BEGIN",
                "direct: update pq_jobs",
                "direct: insert pq_events",
                "direct: update pq_fair",
                "COMMIT",
            ],
            "postgresql": [
                "BEGIN",
                "direct: update pq_jobs, insert pq_events, update pq_fair",
                "direct: pg_notify",
                "COMMIT",
            ],
        },
    ),
    "update_status processed, with a callback": (
        _update_status_processed_callback,
        {
            "sqlite": [
                "BEGIN",
                "direct: update pq_jobs",
                "direct: insert pq_events",
                "direct: update pq_fair",
                "execute: insert pq_deliveries",
                "COMMIT",
            ],
            "postgresql": [
                "BEGIN",
                "direct: update pq_jobs, insert pq_events, update pq_fair",
                "execute: insert pq_deliveries",
                "direct: pg_notify",
                "COMMIT",
            ],
        },
    ),
    "update_status crashed": (
        _update_status_crashed,
        {
            # a locking read first: the attempts left decide crashed or manual_intervention
            "sqlite": [
                "BEGIN",
                "execute: select pq_jobs",
                "direct: update pq_fair",
                "execute: update pq_jobs",
                "direct: insert pq_events",
                "COMMIT",
            ],
            "postgresql": [
                "BEGIN",
                "execute: for update",
                "direct: update pq_fair",
                "execute: update pq_jobs",
                "direct: insert pq_events",
                "direct: pg_notify",
                "COMMIT",
            ],
        },
    ),
    "finish_and_claim": (
        _finish_and_claim,
        {
            "sqlite": [
                "BEGIN",
                "direct: update pq_jobs",
                "direct: insert pq_events",
                "direct: update pq_fair",
                "direct: insert pq_events",
                "direct: update pq_jobs",
                "direct: insert pq_fair, on conflict, update SET",
                "direct: insert pq_queues, on conflict, update SET",
                "COMMIT",
            ],
            # the processed statement takes the seat lock; the freed seat is taken again: no wake-up
            "postgresql": [
                "BEGIN",
                "direct: update pq_jobs, insert pq_events, update pq_fair, pg_advisory_xact_lock",
                PG_CLAIM,
                "COMMIT",
            ],
        },
    ),
    "finish_and_claim, nothing next": (
        _finish_and_claim_nothing,
        {
            "sqlite": [
                "BEGIN",
                "direct: update pq_jobs",
                "direct: insert pq_events",
                "direct: update pq_fair",
                "direct: insert pq_events",
                "COMMIT",
            ],
            "postgresql": [
                "BEGIN",
                "direct: update pq_jobs, insert pq_events, update pq_fair, pg_advisory_xact_lock",
                PG_CLAIM,
                "direct: pg_notify",
                "COMMIT",
            ],
        },
    ),
    "finish_and_claim crashed": (
        _finish_and_claim_crashed,
        {
            "sqlite": [
                "BEGIN",
                "execute: select pq_jobs",
                "direct: update pq_fair",
                "execute: update pq_jobs",
                "direct: insert pq_events",
                "direct: insert pq_events",
                "direct: update pq_jobs",
                "direct: insert pq_fair, on conflict, update SET",
                "direct: insert pq_queues, on conflict, update SET",
                "COMMIT",
            ],
            "postgresql": [
                "BEGIN",
                "execute: for update",
                "direct: update pq_fair",
                "execute: update pq_jobs",
                "direct: insert pq_events",
                "direct: pg_advisory_xact_lock",
                PG_CLAIM,
                "COMMIT",
            ],
        },
    ),
    "rescue_expired": (
        _rescue,
        {
            "sqlite": [
                "BEGIN",
                "execute: select pq_jobs",
                "execute: delete pq_workers",
                "direct: update pq_fair",
                "execute: update pq_jobs",
                "direct: insert pq_events",
                "COMMIT",
            ],
            "postgresql": [
                "BEGIN",
                "execute: for update skip locked",
                "execute: delete pq_workers",
                "direct: update pq_fair",
                "execute: update pq_jobs",
                "direct: insert pq_events",
                "direct: pg_notify",
                "COMMIT",
            ],
        },
    ),
}


@pytest.mark.parametrize("operation", list(EXPECTED))
def test_hot_operation__runs_its_pinned_statements(
    q: PersistentQ, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, operation: str
) -> None:
    prepare, expected = EXPECTED[operation]
    run = prepare(q)
    recorder = Recorder(q, tmp_path / "libpq.trace", monkeypatch)
    assert recorder.watch(run) == expected[recorder.backend]
