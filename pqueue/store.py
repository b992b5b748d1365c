"""PersistentQ: the SQLAlchemy Core implementation of PersistentQInterface. All SQL lives here
(and in `dialects.py` for the few clauses where SQLite and PostgreSQL differ)."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from itertools import groupby, repeat
from typing import Any, TypeVar

from sqlalchemy import (
    BigInteger,
    Connection,
    Engine,
    Float,
    Integer,
    Row,
    and_,
    bindparam,
    case,
    cast,
    delete,
    func,
    literal,
    literal_column,
    null,
    or_,
    select,
    text,
    true,
    update,
)
from sqlalchemy import Text as SQLText
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.sql.elements import ClauseElement, ColumnElement
from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_random

from pqueue.database import describe_url
from pqueue.dialects import SQLDialect, dialect_for, seat_lock_key
from pqueue.direct import DirectStatement
from pqueue.errors import (
    DatabaseBusy,
    DatabaseError,
    DatabaseFull,
    DeliveryLockLost,
    IdempotencyConflict,
    InvalidInput,
    InvalidTransition,
    JobNotFound,
    LeaseLost,
    PQError,
    StopRequested,
    is_disk_full,
)
from pqueue.interface import PersistentQInterface
from pqueue.models import (
    JSON,
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
from pqueue.partner import partner_error
from pqueue.schema import deliveries, events, jobs, queues, workers
from pqueue.settings import Settings
from pqueue.states import ALLOWED_FROM, CLAIMABLE, FINAL, WORKER_OUTCOMES, DeliveryStatus, Status, describe
from pqueue.validation import check_call, jobs_to_put
from pqueue.waiting import Waiter, make_waiter

log = logging.getLogger("pqueue")
T = TypeVar("T")

MAX_BACKOFF_SECONDS = 3600.0
MAX_PAGE = 1000
# How long a writer keeps retrying a locked database (beyond SQLite's own busy timeout, which
# is PQ_WRITE_TIMEOUT) before it gives up with DatabaseBusy; a shorter PQ_WRITE_TIMEOUT caps it.
WRITE_RETRY_SECONDS = 10.0
# A registry row not seen for this long belongs to a program that died without unregistering
# (SIGKILL, a lost host); the next rescue forgets it, so `pq workers` does not grow forever.
FORGET_WORKERS_AFTER_SECONDS = 86400.0


@dataclass(frozen=True)
class FromNow:
    """A time `seconds` after the database's now, as a value for _update_job."""

    seconds: float


def lease_margin(lease_seconds: float) -> float:
    """Safety margin around a lease: the worker stops this much before it ends, and rescue
    waits this much after, so a stalled worker and the next owner never overlap."""
    return min(5.0, lease_seconds / 4)


def retry_backoff(base: float, attempts: int) -> float:
    """Exponential backoff with jitter before a crashed job may be claimed again."""
    delay = min(MAX_BACKOFF_SECONDS, base * 2.0 ** max(0, attempts - 1))
    return float(delay * random.uniform(0.75, 1.25))


def payload_hash(payload: JSON) -> str:
    """A stable digest of a payload, to tell a repeated request from a conflicting one."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _is_transient(exc: BaseException) -> bool:
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


def _translate(exc: SQLAlchemyError) -> DatabaseError:
    first_line = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
    if is_disk_full(getattr(exc, "orig", None)):
        return DatabaseFull(first_line)
    if _is_transient(exc):
        return DatabaseBusy(f"database stayed locked: {first_line}")
    if isinstance(exc, DBAPIError) and exc.connection_invalidated or "connect" in first_line.lower():
        return DatabaseBusy(f"database unreachable: {first_line}")
    return DatabaseError(f"database error: {first_line}")


def _statuses(status: Status | str | Sequence[Status | str] | None) -> list[Status] | None:
    if status is None:
        return None
    items = [status] if isinstance(status, str) else list(status)
    try:
        return [Status(s) for s in items]
    except ValueError:
        known = describe(tuple(Status))
        raise InvalidInput("status", f"{items!r} is not a job status; use {known}") from None


def _claimable() -> ColumnElement[bool]:
    """status IN ('unprocessed', 'crashed') with the values written into the SQL, not bound.

    SQLite uses a partial index only when the query's condition matches the index's own
    condition, and bound values never match: with them the claim was a full scan and sort
    (80 ms with 100,000 jobs stored) instead of one step down ix_pq_jobs_claim.
    """
    return jobs.c.status.in_([literal_column(f"'{status.value}'") for status in CLAIMABLE])


def _json_text(value: Any) -> str:
    """Compact JSON; raises ValueError / TypeError for what JSON cannot hold (NaN, sets…)."""
    return json.dumps(value, allow_nan=False, separators=(",", ":"))


def _claim_message(attempt: ColumnElement[Any], max_attempts: ColumnElement[Any], lease: ColumnElement[Any]) -> Any:
    """The claim's event message, 'attempt N of M, lease L', built in SQL from the claimed row."""
    attempt_text, max_text, lease_text = (cast(number, SQLText()) for number in (attempt, max_attempts, lease))
    return literal("attempt ", SQLText()) + attempt_text + " of " + max_text + ", lease " + lease_text


def _json_safe(field: str, value: JSON) -> None:
    try:
        _json_text(value)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(field, f"is not JSON-serialisable ({exc})") from None


class PersistentQ(PersistentQInterface):
    """A job queue in a SQLite file or a PostgreSQL database."""

    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings
        self.schema = settings.db_schema
        self.dialect: SQLDialect = dialect_for(engine.dialect.name)
        self._statements: dict[str, Any] = {}
        self.clock_offset = timedelta(0)
        self.channel = f"pq_wake_{self.schema or 'public'}"
        self._waiter: Waiter | None = None
        self._registered: dict[str, dict[str, Any]] = {}  # this process's workers, to register again
        lock, wake = self.dialect.seat_lock(), self.dialect.wake_up()
        self._seat_lock = DirectStatement(select(lock), engine.dialect) if lock is not None else None
        self._wake_up = DirectStatement(select(wake), engine.dialect) if wake is not None else None

    # -- transactions -----------------------------------------------------------------------

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        try:
            with self.engine.connect() as conn, conn.begin():
                yield conn
        except SQLAlchemyError as exc:
            raise _translate(exc) from exc

    def _write(self, work: Callable[[Connection], T]) -> T:
        """Run work in one write transaction, again if the database was briefly locked (the retry
        machinery is built only after a first try failed, which is rare)."""
        try:
            return self._transaction(work)
        except SQLAlchemyError as exc:
            if not _is_transient(exc):
                raise _translate(exc) from exc
        return self._retried(work)

    def _transaction(self, work: Callable[[Connection], T]) -> T:
        with self.engine.connect() as conn:
            conn.execution_options(pq_begin="IMMEDIATE")
            with conn.begin():
                return work(conn)

    def _retried(self, work: Callable[[Connection], T]) -> T:
        retrying = Retrying(
            retry=retry_if_exception(_is_transient),
            stop=stop_after_delay(min(WRITE_RETRY_SECONDS, self.settings.write_timeout)),
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
            raise _translate(exc) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    @property
    def clock_offset(self) -> timedelta:
        """Added to the database's clock; tests move time with it instead of sleeping."""
        return self._clock_offset

    @clock_offset.setter
    def clock_offset(self, value: timedelta) -> None:
        self._clock_offset = value
        self._now_expression = self.dialect.now(value)
        self._statements.clear()  # they embed the clock expression

    def _prepared(self, name: str, build: Callable[[], Any]) -> Any:
        """A statement built once and reused: SQLAlchemy then skips recomputing its cache key,
        which is most of the CPU cost of the hot path (claim, finish, event)."""
        statement = self._statements.get(name)
        if statement is None:
            statement = self._statements[name] = build()
        return statement

    def _direct(self, name: str, build: Callable[[], Any]) -> DirectStatement:
        """A hot statement built and compiled once, run on the driver's cursor (see direct.py)."""
        compile_once = lambda: DirectStatement(build(), self.engine.dialect)  # noqa: E731
        statement: DirectStatement = self._prepared(f"direct {name}", compile_once)
        return statement

    def _lock_seats(self, conn: Connection, queue: str) -> None:
        if self._seat_lock is not None:
            self._seat_lock.run(conn, {"w_key": seat_lock_key(queue, self.schema)})

    def _notify(self, conn: Connection, queue: str) -> None:
        if self._wake_up is not None:
            self._wake_up.run(conn, {"w_channel": self.channel, "w_queue": queue})

    @property
    def _now(self) -> ColumnElement[Any]:
        return self._now_expression

    def _in(self, seconds: float) -> ColumnElement[Any]:
        return self.dialect.add_seconds(self._now, seconds)

    # -- submitting -------------------------------------------------------------------------

    def put_item(
        self,
        payload: JSON,
        *,
        queue: str | None = None,
        priority: int = 0,
        callback_url: str | None = None,
        idempotency_key: str | None = None,
        run_after_seconds: float = 0.0,
        max_attempts: int | None = None,
        actor: str = "producer",
    ) -> int:
        check_call("put_item", locals())
        job = NewJob(payload, queue, priority, callback_url, idempotency_key, run_after_seconds, max_attempts)
        return self.put_items([job], actor=actor)[0].id

    def put_items(self, new_jobs: Sequence[NewJob | JSON], *, actor: str = "producer") -> list[PutResult]:
        new_jobs = jobs_to_put(new_jobs, actor)
        where = [f"jobs[{index}]" if len(new_jobs) > 1 else "job" for index in range(len(new_jobs))]
        for label, job in zip(where, new_jobs, strict=True):
            self._validate_new_job(job, label)
        # In list order, so ids (and run order) follow the list: each run of keyless jobs goes in
        # as one JSON array (serialised once, which also checks its payloads); a job with an
        # idempotency key goes alone (it may conflict).
        runs: list[NewJob | tuple[bool, dict[str, Any]]] = []
        start = 0
        for (keyed, delay), run in groupby(
            new_jobs, key=lambda job: (job.idempotency_key is not None, job.run_after_seconds)
        ):
            end = start + sum(1 for _ in run)
            if keyed:
                for label, job in zip(where[start:end], new_jobs[start:end], strict=True):
                    _json_safe(f"{label}.payload", job.payload)
                    runs.append(job)
            else:
                runs.append(self._keyless_run(new_jobs[start:end], where[start:end], delay))
            start = end
        if not runs:
            return []

        def insert_all(conn: Connection) -> list[PutResult]:
            results: list[PutResult] = []
            woken: set[str] = set()
            for run in runs:
                if isinstance(run, NewJob):
                    results.append(self._insert_job(conn, run, actor))
                else:
                    results.extend(self._insert_many(conn, *run, actor, woken))
            for queue in {job.queue or self.settings.queue for job in new_jobs} - woken:
                self._notify(conn, queue)
            return results

        return self._write(insert_all)

    def _keyless_run(self, run: Sequence[NewJob], labels: list[str], delay: float) -> tuple[bool, dict[str, Any]]:
        """(alike, parameters) of _insert_many_statement(alike) for a run of keyless jobs.

        Jobs that share queue, priority, max_attempts and callback_url (a batch usually does) go
        as an array of their payloads with the shared values bound once; otherwise each element
        is [queue, payload, priority, max_attempts, callback_url]. Reading those apart per job
        cost SQLite as much again as the rest of the INSERT (4.4 against 2.3 ms per 1,000 jobs).
        """
        first = run[0]
        shared = (first.queue, first.priority, first.max_attempts, first.callback_url)
        if all((job.queue, job.priority, job.max_attempts, job.callback_url) == shared for job in run):
            return True, {
                "w_items": self._json_array(run, labels, lambda job: job.payload),
                "w_delay": delay,
                "w_queue": first.queue or self.settings.queue,
                "w_priority": first.priority,
                "w_max_attempts": first.max_attempts or self.settings.max_attempts,
                "w_callback_url": first.callback_url,
            }
        default_queue = self.settings.queue
        items = self._json_array(
            run,
            labels,
            lambda job: [job.queue or default_queue, job.payload, job.priority, job.max_attempts, job.callback_url],
        )
        return False, {"w_items": items, "w_delay": delay}

    @staticmethod
    def _json_array(run: Sequence[NewJob], labels: list[str], element: Callable[[NewJob], Any]) -> str:
        """One JSON array of element(job) for each job; a payload JSON cannot hold is named."""
        try:
            return _json_text([element(job) for job in run])
        except (TypeError, ValueError):
            for label, job in zip(labels, run, strict=True):  # name the job whose payload cannot be stored
                _json_safe(f"{label}.payload", job.payload)
            raise

    def _validate_new_job(self, job: NewJob, where: str) -> None:
        """Everything but the payload, which is checked when it is serialised."""
        if job.queue is not None and not (0 < len(job.queue) <= 200):
            raise InvalidInput(f"{where}.queue", "must be 1 to 200 characters")
        if job.idempotency_key is not None and not (0 < len(job.idempotency_key) <= 200):
            raise InvalidInput(f"{where}.idempotency_key", "must be 1 to 200 characters")
        if not isinstance(job.priority, int) or abs(job.priority) > 2**31 - 1:
            raise InvalidInput(f"{where}.priority", "must be a 32-bit integer")
        if job.run_after_seconds < 0:
            raise InvalidInput(f"{where}.run_after_seconds", "must not be negative")
        if job.max_attempts is not None and not (isinstance(job.max_attempts, int) and job.max_attempts >= 1):
            raise InvalidInput(f"{where}.max_attempts", "must be an integer of at least 1")

    def _job_values(self, job: NewJob) -> dict[str, Any]:
        return {
            "queue": job.queue or self.settings.queue,
            "payload": job.payload,
            "payload_hash": payload_hash(job.payload),
            "status": Status.UNPROCESSED.value,
            "priority": job.priority,
            "max_attempts": job.max_attempts or self.settings.max_attempts,
            "callback_url": job.callback_url,
            "idempotency_key": job.idempotency_key,
        }

    def _insert_many(
        self, conn: Connection, alike: bool, params: dict[str, Any], actor: str, woken: set[str]
    ) -> list[PutResult]:
        """Jobs without an idempotency key cannot conflict: the whole run goes to the database as
        one JSON array parameter, unpacked there by one INSERT … SELECT for the jobs and one for
        their events. Per job that costs no statement and no parameter processing in Python, and
        no payload digest (it only serves idempotency keys).

        On PostgreSQL the events are a step of the jobs' statement, and so is the wake-up of the
        run's queue when its jobs are alike (added to `woken`): a single put is then one
        statement, one round trip to the server instead of three."""
        statement = self._direct(f"insert_many_{alike}", partial(self._insert_many_statement, alike))
        in_one = self.dialect.dml_in_cte  # the events and the wake-up are steps of the statement
        bound = {**params, "w_actor": actor, "w_channel": self.channel} if in_one else params
        ids = sorted(row.id for row in statement.run(conn, bound))
        if not in_one:
            created = {"w_ids": _json_text(ids), "w_actor": actor}
            self._direct("created_many", self._created_many_statement).run(conn, created)
        elif alike and self._wake_up is not None:
            woken.add(params["w_queue"])
        return list(map(PutResult, ids, repeat(True)))

    def _insert_many_statement(self, alike: bool) -> Any:
        """INSERT … SELECT from :w_items, a JSON array with one element per job: its payload when
        the jobs are alike (queue, priority, max_attempts and callback_url are then bound once),
        else [queue, payload, priority, max_attempts, callback_url]. Ids come back in the array's
        order once sorted (one statement assigns them)."""
        array = bindparam("w_items", type_=SQLText())
        rows, position, item = self.dialect.json_rows(array)
        queue: ColumnElement[Any]
        priority: ColumnElement[Any]
        max_attempts: ColumnElement[Any]
        callback_url: ColumnElement[Any]
        if alike:
            payload = self.dialect.json_element_json(rows, array)
            queue, callback_url = (bindparam(f"w_{name}", type_=SQLText()) for name in ("queue", "callback_url"))
            priority, max_attempts = (bindparam(f"w_{name}", type_=Integer()) for name in ("priority", "max_attempts"))
        else:
            field = partial(self.dialect.json_item, item)
            payload = self.dialect.json_item_json(item, 1)
            queue, priority, max_attempts, callback_url = field(0), field(2), field(3), field(4)
        values = {
            "queue": queue,
            "payload": payload,
            "payload_hash": literal(""),
            "status": literal(Status.UNPROCESSED.value),
            "priority": cast(priority, Integer()),
            "max_attempts": func.coalesce(cast(max_attempts, Integer()), self.settings.max_attempts),
            "callback_url": callback_url,
            "created_at": self._now,
            "run_after": self.dialect.add_seconds(self._now, bindparam("w_delay", type_=Float())),
        }
        chosen = select(*values.values()).select_from(rows).order_by(position)
        inserted = jobs.insert().from_select(list(values), chosen).returning(jobs.c.id)
        if not self.dialect.dml_in_cte:
            return inserted
        # PostgreSQL: WITH steps write the events and wake the queue's consumers.
        inserted_ids = inserted.cte("inserted")
        created = events.insert().from_select(*self._created_events(inserted_ids.c.id)).cte("created")
        statement = select(inserted_ids.c.id).add_cte(created)
        wake = self.dialect.wake_up()
        if alike and wake is not None:  # a CTE with a volatile call runs once, and only if it is used
            woke = select(wake.label("woke")).cte("woke")
            statement = statement.select_from(inserted_ids.join(woke, true()))
        return statement

    def _created_many_statement(self) -> Any:
        """SQLite: the creation event of each job in :w_ids (a JSON array)."""
        rows, _, job_id = self.dialect.json_rows(bindparam("w_ids", type_=SQLText()))
        columns, values = self._created_events(cast(job_id, BigInteger()))
        return events.insert().from_select(columns, values.select_from(rows))

    def _created_events(self, job_id: ColumnElement[Any]) -> tuple[list[str], Any]:
        """(columns, SELECT) of the creation event of each job_id, by the actor bound as :w_actor."""
        values = {
            "job_id": job_id,
            "from_status": null(),
            "to_status": literal(Status.UNPROCESSED.value),
            "at": self._now,
            "actor": bindparam("w_actor", type_=SQLText()),
            "message": null(),
        }
        return list(values), select(*values.values())

    def _insert_job(self, conn: Connection, job: NewJob, actor: str) -> PutResult:
        values = self._job_values(job)
        queue, digest = values["queue"], values["payload_hash"]
        values.update(created_at=self._now, run_after=self._in(job.run_after_seconds))
        # ON CONFLICT DO NOTHING: two puts racing one key make one job, and neither fails.
        stmt = (
            self.dialect.insert(jobs)
            .values(values)
            .on_conflict_do_nothing(index_elements=["queue", "idempotency_key"])
            .returning(jobs.c.id)
        )
        new_id = conn.execute(stmt).scalar()
        if new_id is None:
            return self._existing_for_key(conn, queue, job.idempotency_key or "", digest)
        self._event(conn, new_id, None, Status.UNPROCESSED, actor, None)
        return PutResult(id=new_id, created=True)

    def _existing_for_key(self, conn: Connection, queue: str, key: str, digest: str) -> PutResult:
        row = conn.execute(
            select(jobs.c.id, jobs.c.payload_hash).where(jobs.c.queue == queue, jobs.c.idempotency_key == key)
        ).one()
        if row.payload_hash != digest:
            raise IdempotencyConflict(key, queue, row.id)
        return PutResult(id=row.id, created=False)

    # -- working ----------------------------------------------------------------------------

    def get_item(self, worker_id: str, *, queue: str | None = None, lease_seconds: float | None = None) -> Job | None:
        check_call("get_item", locals())
        queue = queue or self.settings.queue
        lease = lease_seconds or self.settings.lease_seconds
        return self._write(lambda conn: self._claim(conn, worker_id, queue, lease))

    def _claim(
        self, conn: Connection, worker_id: str, queue: str, lease: float, seats_locked: bool = False
    ) -> Job | None:
        if self.dialect.dml_in_cte:
            # PostgreSQL: an advisory lock per queue, taken by an earlier statement, so the claim
            # statement (a new READ COMMITTED snapshot) counts every committed claim.
            if not seats_locked:
                self._lock_seats(conn, queue)
            params = {"w_queue": queue, "w_worker": worker_id, "w_lease_seconds": lease}
            claimed = self._direct("claim_one", self._claim_statement).first(conn, params)
            return self._job(claimed) if claimed is not None else None
        # SQLite: BEGIN IMMEDIATE already serialises writers.
        picked = self._direct("claim_event", self._claim_event_statement).first(
            conn, {"w_queue": queue, "w_worker": worker_id}
        )
        if picked is None:  # nothing due, the queue is paused, or every seat is taken
            return None
        params = {"w_id": picked.job_id, "w_from": picked.from_status, "w_worker": worker_id, "w_lease_seconds": lease}
        row = self._direct("claim", self._claim_update).first(conn, params)
        assert row is not None, "the job picked in this transaction is still there"
        return self._job(row)

    def candidate_query(self, queue: str) -> Any:
        """The claim's SELECT for one queue with its value inlined, for EXPLAIN in tests."""
        return self._candidate_query().params(w_queue=queue)

    def _candidate_query(self) -> Any:
        # PostgreSQL: skip rows an operator is changing right now instead of waiting.
        return self._pick(jobs.c.id, jobs.c.status).with_for_update(skip_locked=True)

    def _pick(self, *columns: ColumnElement[Any]) -> Any:
        """The next job of :w_queue in run order if the queue has a free seat and is not paused;
        walks the partial claim index (a test guards the plan). The seat check is part of this
        statement: one statement fewer per claim, and it reads the same snapshot as the candidate."""
        seats, paused, running = self._seat_expressions()
        due = select(*columns).where(jobs.c.queue == bindparam("w_queue"), _claimable(), jobs.c.run_after <= self._now)
        return self.dialect.first_if(due.order_by(jobs.c.priority, jobs.c.id), and_(running < seats, paused == False))  # noqa: E712 - SQL

    def _claim_event_statement(self) -> Any:
        """SQLite: the claim's event row, written by the statement that picks the job (it returns
        the job's id and status), so a claim is two statements: this and the fenced UPDATE."""
        message = _claim_message(jobs.c.attempts + 1, jobs.c.max_attempts, jobs.c.lease_id + 1)
        under_process = literal(Status.UNDER_PROCESS.value)
        picked = self._pick(jobs.c.id, jobs.c.status, under_process, self._now, bindparam("w_worker"), message)
        columns = ["job_id", "from_status", "to_status", "at", "actor", "message"]
        return events.insert().from_select(columns, picked).returning(events.c.job_id, events.c.from_status)

    def _claim_values(self) -> dict[str, Any]:
        return {
            "status": Status.UNDER_PROCESS.value,
            "attempts": jobs.c.attempts + 1,
            "lease_id": jobs.c.lease_id + 1,
            "worker_id": bindparam("w_worker"),
            "lease_expires_at": self.dialect.add_seconds(self._now, bindparam("w_lease_seconds", type_=Float())),
            "started_at": self._now,
            "finished_at": None,
            "stop_request": None,
            "stop_reason": None,
        }

    def _claim_update(self) -> Any:
        return (
            update(jobs)
            .where(jobs.c.id == bindparam("w_id"), jobs.c.status == bindparam("w_from"))
            .values(**self._claim_values())
            .returning(*jobs.c)
        )

    def _claim_statement(self) -> Any:
        """PostgreSQL: candidate, claim and its event row in one statement, one round trip to
        the server instead of three (the claim's FOR UPDATE SKIP LOCKED holds the row)."""
        candidate = self._candidate_query().cte("candidate")
        claimed = (
            update(jobs)
            .where(jobs.c.id == candidate.c.id)
            .values(**self._claim_values())
            .returning(*jobs.c, candidate.c.status.label("from_status"))
            .cte("claimed")
        )
        message = _claim_message(claimed.c.attempts, claimed.c.max_attempts, claimed.c.lease_id)
        return self._with_event(claimed, claimed.c.from_status, message)

    def _seat_query(self) -> Any:
        """Seats, paused and running count of the queue bound as :w_queue."""
        return select(*self._seat_expressions())

    def _seat_expressions(self) -> tuple[ColumnElement[Any], ColumnElement[Any], ColumnElement[Any]]:
        """(seats, paused, running) of the queue bound as :w_queue, as scalar SQL expressions."""
        name: Any = bindparam("w_queue")
        settings = select(queues.c.seats, queues.c.paused).where(queues.c.name == name).subquery()
        running = (
            select(func.count())
            .select_from(jobs)
            .where(jobs.c.queue == name, jobs.c.status == Status.UNDER_PROCESS.value)
            .scalar_subquery()
        )
        seats = func.coalesce(select(settings.c.seats).scalar_subquery(), self.settings.max_running)
        paused = func.coalesce(select(settings.c.paused).scalar_subquery(), False)
        return seats, paused, running

    def heartbeat(self, job_id: int, lease_id: int, *, lease_seconds: float | None = None) -> datetime:
        check_call("heartbeat", locals())
        lease = lease_seconds or self.settings.lease_seconds

        def renew(conn: Connection) -> datetime:
            row = conn.execute(
                update(jobs)
                .where(jobs.c.id == job_id, jobs.c.lease_id == lease_id, jobs.c.status == Status.UNDER_PROCESS.value)
                .values(lease_expires_at=self._in(lease))
                .returning(jobs.c.lease_expires_at, jobs.c.stop_request, jobs.c.stop_reason)
            ).first()
            if row is None:
                current = self._lock_job(conn, job_id)
                raise LeaseLost(job_id, lease_id, current.status)
            if row.stop_request:
                raise StopRequested(job_id, row.stop_request, row.stop_reason)
            expires: datetime = row.lease_expires_at
            return expires

        return self._write(renew)

    def update_status(
        self,
        job_id: int,
        status: Status | str,
        *,
        lease_id: int,
        result: JSON = None,
        error: str | None = None,
    ) -> Job:
        check_call("update_status", locals())
        target = self._worker_outcome(status)
        _json_safe("result", result)
        return self._write(lambda conn: self._finish(conn, job_id, lease_id, target, result, error))

    def finish_and_claim(
        self,
        job_id: int,
        status: Status | str,
        *,
        lease_id: int,
        worker_id: str,
        result: JSON = None,
        error: str | None = None,
        queue: str | None = None,
        lease_seconds: float | None = None,
    ) -> tuple[Job, Job | None]:
        check_call("finish_and_claim", locals())
        target = self._worker_outcome(status)
        _json_safe("result", result)
        queue = queue or self.settings.queue
        lease = lease_seconds or self.settings.lease_seconds

        def finish_then_claim(conn: Connection) -> tuple[Job, Job | None]:
            done = self._finish(conn, job_id, lease_id, target, result, error, wake=False, lock_seats_of=queue)
            following = self._claim(conn, worker_id, queue, lease, seats_locked=True)
            if following is None or done.queue != queue:  # else the seat it freed is taken again
                self._notify(conn, done.queue)
            return done, following

        return self._write(finish_then_claim)

    @staticmethod
    def _worker_outcome(status: Status | str) -> Status:
        try:
            target = Status(status)
        except ValueError:
            target = None
        if target not in WORKER_OUTCOMES:
            raise InvalidInput("status", f"{status!r} is not an outcome; use {describe(WORKER_OUTCOMES)}")
        assert target is not None
        return target

    def _finish(
        self,
        conn: Connection,
        job_id: int,
        lease_id: int,
        target: Status,
        result: JSON,
        error: str | None,
        wake: bool = True,
        lock_seats_of: str | None = None,
    ) -> Job:
        """Record a worker's outcome; with lock_seats_of, also take that queue's seat lock
        (PostgreSQL; within the processed UPDATE's own statement, one round trip fewer)."""
        if target == Status.PROCESSED:
            # The common case needs nothing from the row first: one fenced UPDATE, no locking read.
            params: dict[str, Any] = {"w_id": job_id, "w_lease": lease_id, "v_result": result}
            if lock_seats_of is not None and self._seat_lock is not None:
                params["w_key"] = seat_lock_key(lock_seats_of, self.schema)
                locking = partial(self._processed_statement, lock_seats=True)
                row = self._direct("processed_then_lock", locking).first(conn, params)
            else:
                row = self._direct("processed", self._processed_statement).first(conn, params)
            if row is None:
                raise LeaseLost(job_id, lease_id, self._lock_job(conn, job_id).status)
            if not self.dialect.dml_in_cte:
                self._event(conn, job_id, Status.UNDER_PROCESS, target, row.worker_id or "worker", "ok")
            return self._after_move(conn, row, wake)
        current = self._lock_job(conn, job_id)
        if current.status != Status.UNDER_PROCESS.value or current.lease_id != lease_id:
            raise LeaseLost(job_id, lease_id, current.status)
        error = error or current.stop_reason
        values: dict[str, Any] = {"finished_at": self._now, "lease_expires_at": None, "error": error}
        if target == Status.CRASHED:
            if current.attempts >= current.max_attempts:
                target = Status.MANUAL_INTERVENTION
            else:
                values["run_after"] = FromNow(retry_backoff(self.settings.retry_backoff_seconds, current.attempts))
        row = self._update_job(conn, job_id, Status.UNDER_PROCESS, target, values, lease_id)
        self._event(conn, job_id, Status.UNDER_PROCESS, target, current.worker_id or "worker", _summary(error))
        if lock_seats_of is not None:
            self._lock_seats(conn, lock_seats_of)
        return self._after_move(conn, row, wake)

    def _processed_statement(self, lock_seats: bool = False) -> Any:
        """The fenced UPDATE to processed (with its event row on PostgreSQL; with lock_seats, also
        the seat lock of the queue keyed :w_key, taken only when the UPDATE matched)."""
        moved = (
            update(jobs)
            .where(
                jobs.c.id == bindparam("w_id"),
                jobs.c.status == Status.UNDER_PROCESS.value,
                jobs.c.lease_id == bindparam("w_lease"),
            )
            .values(
                status=Status.PROCESSED.value,
                result=bindparam("v_result", type_=jobs.c.result.type),
                error=None,
                finished_at=self._now,
                lease_expires_at=None,
            )
            .returning(*jobs.c)
        )
        if not self.dialect.dml_in_cte:
            return moved
        statement = self._with_event(moved.cte("moved"), literal(Status.UNDER_PROCESS.value), literal("ok"))
        lock = self.dialect.seat_lock()
        return statement.add_columns(lock.label("seats_locked")) if lock_seats and lock is not None else statement

    def _with_event(self, moved: Any, from_status: ColumnElement[Any], message: ColumnElement[Any]) -> Any:
        """PostgreSQL: the moved rows of a DML CTE, with their event rows written by the same
        statement (one round trip instead of two)."""
        actor = func.coalesce(moved.c.worker_id, "worker")
        values = select(moved.c.id, from_status, moved.c.status, self._now, actor, message)
        columns = ["job_id", "from_status", "to_status", "at", "actor", "message"]
        event = events.insert().from_select(columns, values).cte("event")
        return select(*(column for column in moved.c if column.name != "from_status")).add_cte(event)

    def release(self, job_id: int, lease_id: int, *, reason: str = "consumer shutting down") -> Job:
        check_call("release", locals())

        def give_back(conn: Connection) -> Job:
            current = self._lock_job(conn, job_id)
            if current.status != Status.UNDER_PROCESS.value or current.lease_id != lease_id:
                raise LeaseLost(job_id, lease_id, current.status)
            values = {
                "attempts": jobs.c.attempts - 1,
                "lease_expires_at": None,
                "started_at": None,
                "run_after": self._now,
            }
            row = self._update_job(conn, job_id, Status.UNDER_PROCESS, Status.UNPROCESSED, values, lease_id)
            self._event(conn, job_id, Status.UNDER_PROCESS, Status.UNPROCESSED, current.worker_id or "worker", reason)
            return self._after_move(conn, row)

        return self._write(give_back)

    def rescue_expired(self, *, actor: str = "rescue") -> list[tuple[int, Status]]:
        check_call("rescue_expired", locals())
        margin = lease_margin(self.settings.lease_seconds)

        def rescue(conn: Connection) -> list[tuple[int, Status]]:
            expired = conn.execute(
                select(jobs)
                .where(
                    jobs.c.status == Status.UNDER_PROCESS.value,
                    jobs.c.lease_expires_at < self._in(-margin),
                )
                .order_by(jobs.c.id)
                .with_for_update(skip_locked=True)
            ).all()
            conn.execute(delete(workers).where(workers.c.last_seen < self._in(-FORGET_WORKERS_AFTER_SECONDS)))
            return [self._rescue_one(conn, job, actor) for job in expired]

        return self._write(rescue)

    def _rescue_one(self, conn: Connection, job: Row[Any], actor: str) -> tuple[int, Status]:
        values: dict[str, Any] = {"finished_at": self._now, "lease_expires_at": None}
        if job.stop_request:
            target = Status(job.stop_request)
            values["error"] = job.stop_reason
        elif job.attempts >= job.max_attempts:
            target = Status.MANUAL_INTERVENTION
            values["error"] = f"lease expired on attempt {job.attempts} of {job.max_attempts}"
        else:
            target = Status.CRASHED
            values["error"] = f"lease expired on attempt {job.attempts} of {job.max_attempts}"
            values["run_after"] = FromNow(retry_backoff(self.settings.retry_backoff_seconds, job.attempts))
        row = self._update_job(conn, job.id, Status.UNDER_PROCESS, target, values, job.lease_id)
        message = f"lease {job.lease_id} of worker {job.worker_id} expired"
        self._event(conn, job.id, Status.UNDER_PROCESS, target, actor, message)
        self._after_move(conn, row)
        return job.id, target

    def wait_for_work(self, timeout: float, *, queue: str | None = None) -> bool:
        check_call("wait_for_work", locals())
        if self._waiter is None:
            self._waiter = make_waiter(self.engine, self.channel)
        queue = queue or self.settings.queue
        return self._waiter.wait(timeout, lambda: self._work_ready(queue))

    def _work_ready(self, queue: str) -> tuple[bool, float | None]:
        """(a claim could succeed now, seconds until the next delayed job is due).

        Idle consumers run this on every change to the database, so it is cheap: a full or
        paused queue answers after one statement.
        """
        with self._read() as conn:
            seats, paused, running = conn.execute(self._prepared("seats", self._seat_query), {"w_queue": queue}).one()
            if paused or running >= seats:
                return False, None
            due = self._prepared("due", self._due_query)
            if conn.execute(due, {"w_queue": queue}).first() is not None:
                return True, None
            # Only when nothing is due: this one reads every waiting job of the queue.
            waiting = and_(jobs.c.queue == queue, _claimable())
            next_due = conn.execute(
                select(func.min(self.dialect.seconds_between(jobs.c.run_after, self._now))).where(
                    waiting, jobs.c.run_after > self._now
                )
            ).scalar()
        return False, next_due

    def _due_query(self) -> Any:
        """A job of :w_queue that could be claimed now (read-only: no row locks)."""
        waiting = and_(jobs.c.queue == bindparam("w_queue"), _claimable())
        return select(jobs.c.id).where(waiting, jobs.c.run_after <= self._now).limit(1)

    # -- operators --------------------------------------------------------------------------

    def requeue(
        self, job_id: int, *, actor: str = "admin", expect: Status | None = None, message: str | None = None
    ) -> Job:
        check_call("requeue", locals())

        def back_to_queue(conn: Connection) -> Job:
            current = self._check_move(conn, job_id, "requeue", expect)
            values = {
                "attempts": 0,
                "run_after": self._now,
                "started_at": None,
                "finished_at": None,
                "lease_expires_at": None,
                "stop_request": None,
                "stop_reason": None,
                "result": None,
                "error": None,
            }
            row = self._update_job(conn, job_id, Status(current.status), Status.UNPROCESSED, values)
            text_ = message or "requeued with fresh attempts"
            self._event(conn, job_id, Status(current.status), Status.UNPROCESSED, actor, text_)
            return self._after_move(conn, row)

        return self._write(back_to_queue)

    def cancel(
        self, job_id: int, *, actor: str = "admin", expect: Status | None = None, reason: str | None = None
    ) -> Job:
        check_call("cancel", locals())
        return self._stop(job_id, "cancel", Status.CANCELLED, actor, expect, reason or f"cancelled by {actor}")

    def fail(self, job_id: int, reason: str, *, actor: str = "admin", expect: Status | None = None) -> Job:
        check_call("fail", locals())
        if not reason or not reason.strip():
            raise InvalidInput("reason", "say why the job is failed")
        return self._stop(job_id, "fail", Status.MANUAL_INTERVENTION, actor, expect, reason)

    def _stop(self, job_id: int, operation: str, target: Status, actor: str, expect: Status | None, reason: str) -> Job:
        def stop(conn: Connection) -> Job:
            current = self._check_move(conn, job_id, operation, expect)
            status = Status(current.status)
            if status == Status.UNDER_PROCESS:
                # The seat stays taken until the worker has really stopped the algorithm.
                request = {"stop_request": target.value, "stop_reason": reason}
                row = self._update_job(conn, job_id, status, status, request)
                self._event(conn, job_id, status, status, actor, f"{operation} requested: {reason}")
                return self._job(row)
            values = {"error": reason, "finished_at": self._now, "lease_expires_at": None}
            row = self._update_job(conn, job_id, status, target, values)
            self._event(conn, job_id, status, target, actor, reason)
            return self._after_move(conn, row)

        return self._write(stop)

    def redeliver(self, job_id: int, *, actor: str = "admin") -> Delivery:
        check_call("redeliver", locals())

        def again(conn: Connection) -> Delivery:
            job = self._lock_job(conn, job_id)
            if job.status not in FINAL or not job.callback_url:
                raise InvalidTransition(
                    job_id, job.status, "redeliver", "a job in " + describe(FINAL) + " with a callback_url"
                )
            latest = self._latest_delivery_row(conn, job_id)
            if latest is None:
                delivery_id = self._queue_delivery(conn, job)
            else:
                delivery_id = latest.id
                conn.execute(
                    update(deliveries)
                    .where(deliveries.c.id == delivery_id)
                    .values(
                        status=DeliveryStatus.PENDING.value,
                        attempts=0,
                        next_attempt_at=self._now,
                        locked_by=None,
                        locked_until=None,
                    )
                )
            self._event(conn, job_id, Status(job.status), Status(job.status), actor, "callback redelivery requested")
            return self._delivery(conn.execute(select(deliveries).where(deliveries.c.id == delivery_id)).one())

        return self._write(again)

    def pause(self, queue: str | None = None, *, actor: str = "admin") -> QueueInfo:
        check_call("pause", locals())
        return self._set_queue(queue or self.settings.queue, paused=True)

    def resume(self, queue: str | None = None, *, actor: str = "admin") -> QueueInfo:
        check_call("resume", locals())
        return self._set_queue(queue or self.settings.queue, paused=False)

    def set_seats(self, queue: str, seats: int) -> QueueInfo:
        check_call("set_seats", locals())
        if seats < 1:
            raise InvalidInput("seats", "must be at least 1")
        return self._set_queue(queue, seats=seats)

    def _set_queue(self, queue: str, **values: Any) -> QueueInfo:
        def upsert(conn: Connection) -> QueueInfo:
            stmt = self.dialect.insert(queues).values(name=queue, **values)
            conn.execute(self.dialect.upsert_values(stmt, ["name"], values))
            self._notify(conn, queue)
            row = conn.execute(select(queues).where(queues.c.name == queue)).one()
            return QueueInfo(queue, row.seats or self.settings.max_running, bool(row.paused))

        return self._write(upsert)

    def queues(self) -> list[QueueInfo]:
        with self._read() as conn:
            configured = {row.name: row for row in conn.execute(select(queues))}
            names = set(configured) | set(conn.execute(select(jobs.c.queue).distinct()).scalars())
        infos = []
        for name in sorted(names):
            row = configured.get(name)
            seats = row.seats if row is not None and row.seats else self.settings.max_running
            infos.append(QueueInfo(name, seats, bool(row.paused) if row is not None else False))
        return infos

    def queue_settings(self, queue: str) -> QueueInfo | None:
        check_call("queue_settings", locals())
        with self._read() as conn:
            row = conn.execute(select(queues).where(queues.c.name == queue)).first()
        if row is None:
            return None
        return QueueInfo(queue, row.seats or self.settings.max_running, bool(row.paused))

    def purge(
        self,
        older_than_seconds: float,
        status: Sequence[Status | str] = (Status.PROCESSED,),
        *,
        dry_run: bool = False,
        batch_size: int = 1000,
        on_batch: Callable[[int], None] | None = None,
    ) -> int:
        check_call("purge", locals())
        chosen = _statuses(status) or []
        if Status.UNDER_PROCESS in chosen:
            raise InvalidInput("status", "under_process jobs are running and are never purged")
        if older_than_seconds < 0:
            raise InvalidInput("older_than", "must not be negative")
        pending = select(deliveries.c.id).where(
            deliveries.c.job_id == jobs.c.id, deliveries.c.status == DeliveryStatus.PENDING.value
        )
        selection = and_(
            jobs.c.status.in_([s.value for s in chosen]),
            jobs.c.finished_at < self._in(-older_than_seconds),
            ~pending.exists(),
        )
        if dry_run:
            with self._read() as conn:
                return int(conn.execute(select(func.count()).select_from(jobs).where(selection)).scalar_one())
        total = 0
        while True:
            removed = self._write(lambda conn: self._purge_batch(conn, selection, batch_size))
            total += removed
            if on_batch is not None:
                on_batch(removed)
            if removed < batch_size:
                return total

    def _purge_batch(self, conn: Connection, selection: ColumnElement[bool], batch_size: int) -> int:
        ids = list(conn.execute(select(jobs.c.id).where(selection).limit(batch_size)).scalars())
        if ids:
            conn.execute(delete(events).where(events.c.job_id.in_(ids)))
            conn.execute(delete(deliveries).where(deliveries.c.job_id.in_(ids)))
            conn.execute(delete(jobs).where(jobs.c.id.in_(ids)))
        return len(ids)

    # -- the shared steps of every transition -----------------------------------------------

    def _lock_job(self, conn: Connection, job_id: int) -> Row[Any]:
        # FOR UPDATE on PostgreSQL: the status read here stays true until the UPDATE below.
        lock = self._prepared("lock", lambda: select(jobs).where(jobs.c.id == bindparam("w_id")).with_for_update())
        row = conn.execute(lock, {"w_id": job_id}).first()
        if row is None:
            raise JobNotFound(job_id)
        return row

    def _check_move(self, conn: Connection, job_id: int, operation: str, expect: Status | None) -> Row[Any]:
        current = self._lock_job(conn, job_id)
        allowed = ALLOWED_FROM[operation]
        if expect is not None and current.status != expect:
            raise InvalidTransition(job_id, current.status, operation, f"{expect} (as it was shown)")
        if current.status not in allowed:
            raise InvalidTransition(job_id, current.status, operation, describe(allowed))
        return current

    def _update_job(
        self,
        conn: Connection,
        job_id: int,
        from_status: Status,
        to_status: Status,
        values: dict[str, Any],
        lease_id: int | None = None,
    ) -> Row[Any]:
        """The one conditional UPDATE every transition goes through.

        `values` holds plain values, `self._now`, FromNow(seconds), or other SQL expressions;
        without the last kind the statement is prepared once per set of columns and reused.
        """
        # Bound names must differ from column names in an UPDATE, hence the w_ prefix.
        params: dict[str, Any] = {"w_id": job_id, "w_from": from_status.value, "w_to": to_status.value}
        if lease_id is not None:
            params["w_lease"] = lease_id
        for key, value in values.items():
            if isinstance(value, FromNow):
                params[f"v_{key}"] = value.seconds
            elif not isinstance(value, ClauseElement):
                params[f"v_{key}"] = value
        plain = all(not isinstance(v, ClauseElement) or v is self._now for v in values.values())

        def build() -> Any:
            conditions = [jobs.c.id == bindparam("w_id"), jobs.c.status == bindparam("w_from")]
            if lease_id is not None:
                conditions.append(jobs.c.lease_id == bindparam("w_lease"))
            assignments: dict[str, Any] = {"status": bindparam("w_to")}
            for key, value in values.items():
                if isinstance(value, FromNow):
                    assignments[key] = self.dialect.add_seconds(self._now, bindparam(f"v_{key}", type_=Float()))
                elif value is self._now or isinstance(value, ClauseElement):
                    assignments[key] = value
                else:
                    assignments[key] = bindparam(f"v_{key}", type_=jobs.c[key].type)
            return update(jobs).where(*conditions).values(**assignments).returning(*jobs.c)

        name = f"update:{lease_id is not None}:{','.join(sorted(values))}"
        statement = self._prepared(name, build) if plain else build()
        row = conn.execute(statement, params).first()
        if row is None:  # the row is locked, so only a bug gets here
            raise PQError(f"job {job_id} changed during {from_status} -> {to_status}")
        return row

    def _after_move(self, conn: Connection, row: Any, wake: bool = True) -> Job:
        """Queue the callback of a final outcome and wake consumers when a seat or job frees
        (unless the caller takes the freed seat itself in this transaction)."""
        if row.status in FINAL and row.callback_url:
            self._queue_delivery(conn, row)
        if wake:
            self._notify(conn, row.queue)
        return self._job(row)

    def _event(
        self,
        conn: Connection,
        job_id: int,
        from_status: Status | None,
        to_status: Status,
        actor: str,
        message: str | None,
    ) -> None:
        row = {
            "w_job": job_id,
            "w_from": from_status.value if from_status else None,
            "w_to": to_status.value,
            "w_actor": actor,
            "w_message": message,
        }
        self._direct("event", self._event_statement).run(conn, row)

    def _event_statement(self) -> Any:
        return (
            events.insert()
            .inline()  # no implicit RETURNING of the new id on PostgreSQL: nobody reads it
            .values(
                job_id=bindparam("w_job"),
                from_status=bindparam("w_from"),
                to_status=bindparam("w_to"),
                at=self._now,
                actor=bindparam("w_actor"),
                message=bindparam("w_message"),
            )
        )

    def _queue_delivery(self, conn: Connection, job: Any) -> int:
        outcome: dict[str, Any] = {"id": job.id, "status": job.status}
        if job.status == Status.PROCESSED.value:
            outcome["result"] = job.result
        else:
            outcome["error"] = partner_error(job.error)
        outcome["attempts"] = job.attempts
        finished = job.finished_at
        outcome["finished_at"] = finished.isoformat().replace("+00:00", "Z") if finished else None
        delivery_id: int = conn.execute(
            deliveries.insert()
            .values(
                job_id=job.id,
                lease_id=job.lease_id,
                url=job.callback_url,
                body=json.dumps(outcome, separators=(",", ":"), sort_keys=True),
                status=DeliveryStatus.PENDING.value,
                created_at=self._now,
                next_attempt_at=self._now,
            )
            .returning(deliveries.c.id)
        ).scalar_one()
        return delivery_id

    # -- reading ----------------------------------------------------------------------------

    def get_job(self, job_id: int) -> Job:
        check_call("get_job", locals())
        with self._read() as conn:
            row = conn.execute(select(jobs).where(jobs.c.id == job_id)).first()
            if row is None:
                raise JobNotFound(job_id)
            latest = self._latest_delivery_row(conn, job_id)
        return self._job(row, self._delivery(latest) if latest is not None else None)

    def _filters(
        self,
        status: Status | str | Sequence[Status | str] | None,
        queue: str | None,
        since_seconds: float | None,
        search: str | None,
    ) -> list[ColumnElement[bool]]:
        conditions: list[ColumnElement[bool]] = []
        chosen = _statuses(status)
        if chosen:
            conditions.append(jobs.c.status.in_([s.value for s in chosen]))
        if queue:
            conditions.append(jobs.c.queue == queue)
        if since_seconds is not None:
            conditions.append(jobs.c.created_at >= self._in(-since_seconds))
        if search:
            text_match = func.lower(cast(jobs.c.payload, SQLText)).contains(search.lower(), autoescape=True)
            # Digits also match the id, when they fit in an id column (a longer number would not
            # bind on SQLite, and no job has such an id).
            as_id = search.isascii() and search.isdigit() and int(search) < 2**63
            conditions.append(or_(text_match, jobs.c.id == int(search)) if as_id else text_match)
        return conditions

    def get_all_items(
        self,
        *,
        status: Status | str | Sequence[Status | str] | None = None,
        queue: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
        oldest_first: bool = False,
        since_seconds: float | None = None,
        search: str | None = None,
    ) -> Page:
        check_call("get_all_items", locals())
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidInput("limit", f"must be between 1 and {MAX_PAGE}")
        conditions = self._filters(status, queue, since_seconds, search)
        if cursor is not None:
            if not cursor.isdigit():
                raise InvalidInput("cursor", f"{cursor!r} is not a cursor this API returned")
            conditions.append(jobs.c.id > int(cursor) if oldest_first else jobs.c.id < int(cursor))
        order = jobs.c.id.asc() if oldest_first else jobs.c.id.desc()
        with self._read() as conn:
            rows = conn.execute(select(jobs).where(*conditions).order_by(order).limit(limit + 1)).all()
        items = [self._job(row) for row in rows[:limit]]
        next_cursor = str(items[-1].id) if len(rows) > limit else None
        return Page(items=items, next_cursor=next_cursor)

    def count_items(
        self,
        *,
        status: Status | str | Sequence[Status | str] | None = None,
        queue: str | None = None,
        since_seconds: float | None = None,
        search: str | None = None,
    ) -> int:
        check_call("count_items", locals())
        conditions = self._filters(status, queue, since_seconds, search)
        with self._read() as conn:
            return int(conn.execute(select(func.count()).select_from(jobs).where(*conditions)).scalar_one())

    def next_items(self, *, queue: str | None = None, limit: int = 10) -> list[Job]:
        check_call("next_items", locals())
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidInput("limit", f"must be between 1 and {MAX_PAGE}")
        conditions: list[ColumnElement[bool]] = [_claimable()]
        if queue:
            conditions.append(jobs.c.queue == queue)
        # Due jobs first, in claim order; delayed ones after, by when they come due.
        not_due = case((jobs.c.run_after > self._now, 1), else_=0)
        order = [not_due, jobs.c.priority, jobs.c.id]
        with self._read() as conn:
            rows = conn.execute(select(jobs).where(*conditions).order_by(*order).limit(limit)).all()
        return [self._job(row) for row in rows]

    def events(self, job_id: int) -> list[Event]:
        check_call("events", locals())
        with self._read() as conn:
            if conn.execute(select(jobs.c.id).where(jobs.c.id == job_id)).first() is None:
                raise JobNotFound(job_id)
            rows = conn.execute(select(events).where(events.c.job_id == job_id).order_by(events.c.id)).all()
        return [
            Event(
                id=row.id,
                job_id=row.job_id,
                from_status=Status(row.from_status) if row.from_status else None,
                to_status=Status(row.to_status),
                at=row.at,
                actor=row.actor,
                message=row.message,
            )
            for row in rows
        ]

    def stats(self) -> Stats:
        waiting = _claimable()
        running_cols = [
            jobs.c.id,
            jobs.c.queue,
            jobs.c.worker_id,
            jobs.c.started_at,
            jobs.c.lease_expires_at,
            jobs.c.attempts,
            self.dialect.seconds_between(self._now, jobs.c.started_at).label("elapsed"),
            self.dialect.seconds_between(jobs.c.lease_expires_at, self._now).label("remaining"),
        ]
        with self._read() as conn:
            counts: dict[str, dict[str, int]] = {}
            for row in conn.execute(
                select(jobs.c.queue, jobs.c.status, func.count()).group_by(jobs.c.queue, jobs.c.status)
            ):
                counts.setdefault(row[0], {})[row[1]] = int(row[2])
            oldest = conn.execute(
                select(self.dialect.seconds_between(self._now, func.min(jobs.c.created_at))).where(waiting)
            ).scalar()
            running = conn.execute(
                select(*running_cols).where(jobs.c.status == Status.UNDER_PROCESS.value).order_by(jobs.c.id)
            ).all()
            delivery_counts = {
                row[0]: int(row[1])
                for row in conn.execute(select(deliveries.c.status, func.count()).group_by(deliveries.c.status))
            }
        return Stats(
            counts=counts,
            oldest_waiting_seconds=float(oldest) if oldest is not None else None,
            running=[
                RunningJob(
                    id=r.id,
                    queue=r.queue,
                    worker_id=r.worker_id,
                    started_at=r.started_at,
                    elapsed_seconds=float(r.elapsed or 0),
                    lease_expires_at=r.lease_expires_at,
                    lease_remaining_seconds=float(r.remaining or 0),
                    attempts=r.attempts,
                )
                for r in running
            ],
            deliveries=delivery_counts,
            queues=self.queues(),
        )

    def throughput(self, *, window_seconds: float = 3600, bucket_seconds: int = 60) -> list[ThroughputPoint]:
        check_call("throughput", locals())
        if bucket_seconds < 1:
            raise InvalidInput("bucket_seconds", "must be at least 1")
        bucket = self.dialect.bucket(events.c.at, bucket_seconds).label("bucket")
        outcomes = (Status.PROCESSED.value, Status.CRASHED.value, Status.MANUAL_INTERVENTION.value)
        stmt = (
            select(bucket, events.c.to_status, func.count())
            .where(events.c.to_status.in_(outcomes), events.c.at >= self._in(-window_seconds))
            .where(or_(events.c.from_status.is_(None), events.c.from_status != events.c.to_status))
            .group_by(bucket, events.c.to_status)
            .order_by(bucket)
        )
        with self._read() as conn:
            rows = conn.execute(stmt).all()
        return [ThroughputPoint(bucket_start=r[0], status=Status(r[1]), count=int(r[2])) for r in rows]

    def run_durations(self, *, window_seconds: float = 3600, limit: int = 5000) -> list[float]:
        check_call("run_durations", locals())
        duration = self.dialect.seconds_between(jobs.c.finished_at, jobs.c.started_at)
        stmt = (
            select(duration)
            .where(
                jobs.c.status == Status.PROCESSED.value,
                jobs.c.finished_at >= self._in(-window_seconds),
                jobs.c.started_at.is_not(None),
            )
            .order_by(jobs.c.finished_at.desc())
            .limit(limit)
        )
        with self._read() as conn:
            return [float(value) for value in conn.execute(stmt).scalars()]

    def now(self) -> datetime:
        with self._read() as conn:
            moment: datetime = conn.execute(select(self._now)).scalar_one()
        return moment

    def ping(self) -> None:
        with self._read() as conn:
            conn.execute(text("SELECT 1"))

    # -- workers ----------------------------------------------------------------------------

    def register_worker(self, worker_id: str, *, kind: str, queue: str, host: str, pid: int) -> None:
        check_call("register_worker", locals())
        self._registered[worker_id] = {"kind": kind, "queue": queue, "host": host, "pid": pid}
        self._write(lambda conn: self._upsert_worker(conn, worker_id))

    def _upsert_worker(self, conn: Connection, worker_id: str) -> None:
        values = {**self._registered[worker_id], "started_at": self._now, "last_seen": self._now}
        stmt = self.dialect.insert(workers).values(id=worker_id, **values)
        conn.execute(self.dialect.upsert_values(stmt, ["id"], values))

    def touch_worker(self, worker_id: str) -> None:
        check_call("touch_worker", locals())

        def touch(conn: Connection) -> None:
            seen = update(workers).where(workers.c.id == worker_id).values(last_seen=self._now)
            if conn.execute(seen.returning(workers.c.id)).first() is None and worker_id in self._registered:
                self._upsert_worker(conn, worker_id)  # forgotten while this program was cut off for a day

        self._write(touch)

    def unregister_worker(self, worker_id: str) -> None:
        check_call("unregister_worker", locals())
        self._registered.pop(worker_id, None)
        self._write(lambda conn: conn.execute(delete(workers).where(workers.c.id == worker_id)))

    def workers(self) -> list[Worker]:
        current_job = (
            select(func.min(jobs.c.id))
            .where(jobs.c.worker_id == workers.c.id, jobs.c.status == Status.UNDER_PROCESS.value)
            .scalar_subquery()
        )
        seen = self.dialect.seconds_between(self._now, workers.c.last_seen)
        with self._read() as conn:
            rows = conn.execute(
                select(workers, seen.label("seen"), current_job.label("job")).order_by(workers.c.id)
            ).all()
        return [
            Worker(
                id=r.id,
                kind=r.kind,
                host=r.host,
                pid=r.pid,
                queue=r.queue,
                started_at=r.started_at,
                last_seen=r.last_seen,
                seen_seconds_ago=float(r.seen),
                current_job_id=r.job,
            )
            for r in rows
        ]

    # -- callback outbox --------------------------------------------------------------------

    def claim_deliveries(self, worker_id: str, *, limit: int = 10, lock_seconds: float = 60) -> list[Delivery]:
        check_call("claim_deliveries", locals())

        def claim(conn: Connection) -> list[Delivery]:
            due = (
                conn.execute(
                    select(deliveries.c.id)
                    .where(
                        deliveries.c.status == DeliveryStatus.PENDING.value,
                        deliveries.c.next_attempt_at <= self._now,
                        or_(deliveries.c.locked_until.is_(None), deliveries.c.locked_until < self._now),
                    )
                    .order_by(deliveries.c.next_attempt_at, deliveries.c.id)
                    .limit(limit)
                    .with_for_update(skip_locked=True)
                )
                .scalars()
                .all()
            )
            if not due:
                return []
            rows = conn.execute(
                update(deliveries)
                .where(deliveries.c.id.in_(due))
                .values(locked_by=worker_id, locked_until=self._in(lock_seconds))
                .returning(*deliveries.c)
            ).all()
            return sorted((self._delivery(row) for row in rows), key=lambda d: d.id)

        return self._write(claim)

    def record_delivery(
        self,
        delivery_id: int,
        *,
        delivered: bool,
        status_code: int | None = None,
        error: str | None = None,
        retry_in_seconds: float | None = None,
        held_by: str | None = None,
    ) -> Delivery:
        check_call("record_delivery", locals())
        values: dict[str, Any] = {
            "attempts": deliveries.c.attempts + 1,
            "last_status_code": status_code,
            "last_error": error,
            "last_attempt_at": self._now,
            "locked_by": None,
            "locked_until": None,
        }
        if delivered:
            values.update(status=DeliveryStatus.DELIVERED.value, delivered_at=self._now, last_error=None)
        elif retry_in_seconds is not None:
            values.update(next_attempt_at=self._in(retry_in_seconds))
        else:
            values.update(status=DeliveryStatus.UNDELIVERABLE.value)

        held = [] if held_by is None else [deliveries.c.locked_by == held_by]
        the_delivery = select(deliveries.c.id).where(deliveries.c.id == delivery_id)

        def record(conn: Connection) -> Delivery:
            row = conn.execute(
                update(deliveries)
                .where(deliveries.c.id == delivery_id, *held)
                .values(**values)
                .returning(*deliveries.c)
            ).first()
            if row is not None:
                return self._delivery(row)
            if held_by is not None and conn.execute(the_delivery).first():  # there, held by another now
                raise DeliveryLockLost(delivery_id, held_by)
            raise InvalidInput("delivery_id", f"no delivery {delivery_id}")

        return self._write(record)

    def delivery(self, job_id: int) -> Delivery | None:
        check_call("delivery", locals())
        with self._read() as conn:
            row = self._latest_delivery_row(conn, job_id)
        return self._delivery(row) if row is not None else None

    def _latest_delivery_row(self, conn: Connection, job_id: int) -> Row[Any] | None:
        return conn.execute(
            select(deliveries).where(deliveries.c.job_id == job_id).order_by(deliveries.c.id.desc()).limit(1)
        ).first()

    # -- maintenance ------------------------------------------------------------------------

    def backup(self, path: str) -> None:
        check_call("backup", locals())
        if self.dialect.name != "sqlite":
            raise PQError("pq backup copies SQLite files; for PostgreSQL use pg_dump")
        target = os.path.abspath(path)
        if os.path.exists(target):
            raise InvalidInput("file", f"{target} already exists; choose a new file")
        # VACUUM cannot run inside a transaction: use the driver connection, which is in
        # autocommit mode (pqueue issues its own BEGINs).
        raw = self.engine.raw_connection()
        try:
            raw.driver_connection.execute("VACUUM INTO ?", (target,))  # type: ignore[union-attr]
        except sqlite3.Error as exc:
            raise DatabaseError(f"backup to {target} failed: {exc}") from exc
        finally:
            raw.close()

    def describe(self) -> str:
        return describe_url(self.engine.url.render_as_string(hide_password=False))

    def close(self) -> None:
        if self._waiter is not None:
            self._waiter.close()
            self._waiter = None
        self.engine.dispose()

    # -- rows to values ---------------------------------------------------------------------

    @staticmethod
    def _job(row: Any, delivery: Delivery | None = None) -> Job:
        return Job(
            id=row.id,
            queue=row.queue,
            payload=row.payload,
            status=Status(row.status),
            priority=row.priority,
            attempts=row.attempts,
            max_attempts=row.max_attempts,
            lease_id=row.lease_id,
            worker_id=row.worker_id,
            result=row.result,
            error=row.error,
            callback_url=row.callback_url,
            idempotency_key=row.idempotency_key,
            created_at=row.created_at,
            run_after=row.run_after,
            started_at=row.started_at,
            finished_at=row.finished_at,
            lease_expires_at=row.lease_expires_at,
            stop_request=Status(row.stop_request) if row.stop_request else None,
            stop_reason=row.stop_reason,
            delivery=delivery,
        )

    @staticmethod
    def _delivery(row: Row[Any]) -> Delivery:
        return Delivery(
            id=row.id,
            job_id=row.job_id,
            lease_id=row.lease_id,
            url=row.url,
            body=row.body,
            status=DeliveryStatus(row.status),
            attempts=row.attempts,
            last_status_code=row.last_status_code,
            last_error=row.last_error,
            created_at=row.created_at,
            next_attempt_at=row.next_attempt_at,
            last_attempt_at=row.last_attempt_at,
            delivered_at=row.delivered_at,
        )


def _summary(value: str | None) -> str | None:
    """The line of an error worth showing in a timeline: its last (the exception itself)."""
    if not value:
        return value
    lines = value.strip().splitlines()
    return lines[-1][:500] if lines else None
