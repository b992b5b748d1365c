"""PersistentQ: the operations of PersistentQInterface, on a SQLite file or a PostgreSQL database.

Each operation checks its arguments, decides (pqueue/policy.py, and the moves of
pqueue/states.py), opens a transaction (pqueue/transactions.py), runs the statements of its
concern (pqueue/sql/) and turns the rows into values (pqueue/rows.py). No SQL is written here,
and nothing here asks which database it is: where the backends differ, pqueue/sql/ picked the
statements' shapes once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from itertools import repeat
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.sql.elements import ColumnElement

from pqueue import policy, rows, submitting
from pqueue.claims import OwnClaims, process_worker_id
from pqueue.database import describe_url
from pqueue.dialects import SQLDialect, dialect_for
from pqueue.errors import (
    AmbiguousQueue,
    DatabaseReadOnly,
    DeliveryLockLost,
    HoldGone,
    IdempotencyConflict,
    InvalidInput,
    InvalidTransition,
    JobNotFound,
    LeaseLost,
    PQError,
    QueueNotFound,
    StopRequested,
)
from pqueue.interface import PersistentQInterface
from pqueue.line_cache import LineCache
from pqueue.models import (
    JSON,
    Delivery,
    Event,
    Hold,
    Job,
    NewJob,
    Page,
    PutResult,
    QueueInfo,
    Replication,
    Stats,
    ThroughputPoint,
    Worker,
)
from pqueue.partner_book import PartnerBook
from pqueue.partners import DEFAULT_PARTNER
from pqueue.settings import Settings
from pqueue.silence import SilenceWatch
from pqueue.sql import Context, Statements, locks
from pqueue.states import (
    ALLOWED_FROM,
    FINAL,
    AgentStatus,
    Move,
    Status,
    describe,
    released,
    requeued,
    statuses,
    stop_requested,
    stopped_by_operator,
)
from pqueue.transactions import Transactions, Tx
from pqueue.validation import checked, jobs_to_put
from pqueue.wait_book import WaitBook
from pqueue.waiting import Waiter, make_waiter

log = logging.getLogger("pqueue")

# A registry row not seen for this long belongs to a program that died without unregistering
# (SIGKILL, a lost host); the next rescue forgets it, so `pq workers` does not grow forever.
FORGET_WORKERS_AFTER_SECONDS = 86400.0
HOLDS_READ = 500  # job ids per statement of `holds` (well under SQLite's bound-parameter limit)

# A resume, or a relay's go, forgets since when and by whom the queue was paused.
RESUMED: dict[str, Any] = {"paused": False, "paused_at": None, "paused_by": None}


class _Rehearsed(Exception):
    """Rolls a rehearsal's transaction back (rehearse_hand_off)."""


class PersistentQ(PartnerBook, WaitBook, PersistentQInterface):
    """A job queue in a SQLite file or a PostgreSQL database."""

    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings
        self.schema = settings.db_schema
        self.dialect: SQLDialect = dialect_for(engine.dialect.name)
        self.channel = f"pq_wake_{self.schema or 'public'}"
        self._waiter: Waiter | None = None
        self._registered: dict[str, dict[str, Any]] = {}  # this process's workers, to register again
        self._claims = OwnClaims()  # the leases of this handle's claims, for update_status without one
        self.clock_offset = timedelta(0)
        self._lines = LineCache(settings.wait_snapshot_seconds)  # each queue's predicted line, shared
        self._tx = Transactions(engine, locks(self._sql.ctx, self.schema, self.channel), settings.write_timeout)

    @property
    def clock_offset(self) -> timedelta:
        """Added to the database's clock; tests move time with it instead of sleeping."""
        return self._clock_offset

    @clock_offset.setter
    def clock_offset(self, value: timedelta) -> None:
        self._clock_offset = value
        now = self.dialect.now(value)
        ctx = Context(self.dialect, self.engine.dialect, now, self.settings.max_running, self.settings.max_attempts)
        self._sql = Statements(ctx)  # they embed the clock expression

    # -- submitting -------------------------------------------------------------------------

    @checked
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
        partner: str | None = None,
    ) -> int:
        job = NewJob(payload, queue, priority, callback_url, idempotency_key, run_after_seconds, max_attempts, partner)
        return self.put_items([job], actor=actor)[0].id

    def put_items(self, jobs: Sequence[NewJob | JSON], *, actor: str = "producer") -> list[PutResult]:
        new_jobs, bare = jobs_to_put(jobs, actor)
        runs = submitting.runs(new_jobs, self.settings, bare)
        if not runs:
            return []
        woken = {job.queue or self.settings.queue for job in new_jobs}
        named = sorted({job.partner for job in new_jobs if job.partner not in (None, DEFAULT_PARTNER)})

        def insert_all(tx: Tx) -> list[PutResult]:
            self._refuse_unusable_partners(tx, named)
            results: list[PutResult] = []
            for run in runs:
                if isinstance(run, NewJob):
                    results.append(self._insert_keyed(tx, run, actor))
                else:
                    results.extend(map(PutResult, self._sql.put.many(tx, *run, actor), repeat(True)))
            for queue in woken:
                tx.wake(queue)
            return results

        return self._tx.write(insert_all)

    def _insert_keyed(self, tx: Tx, job: NewJob, actor: str) -> PutResult:
        values = submitting.keyed_values(job, self.settings)
        new_id = tx.conn.execute(self._sql.put.keyed(values, job.run_after_seconds)).scalar()
        if new_id is not None:
            self._sql.moves.write_event(tx, new_id, None, Status.UNPROCESSED, actor, None)
            return PutResult(id=new_id, created=True)
        queue, key = values["queue"], job.idempotency_key or ""
        holder = tx.conn.execute(self._sql.put.holder_of_key(values["partner"], queue, key)).one()
        if holder.payload_hash != values["payload_hash"]:
            raise IdempotencyConflict(key, queue, holder.id)
        return PutResult(id=holder.id, created=False)

    # -- working ----------------------------------------------------------------------------

    @checked
    def get_item(
        self, worker_id: str | None = None, *, queue: str | None = None, lease_seconds: float | None = None
    ) -> Job | None:
        queue = queue or self.settings.queue
        lease = lease_seconds or self.settings.lease_seconds
        worker = worker_id or process_worker_id()

        def claim(tx: Tx) -> Job | None:
            if worker_id is None:  # this process, registered like any worker and seen at every claim
                self._register_as_process(tx, worker, queue)
            return self._claim(tx, worker, queue, lease)

        return self._remember(self._tx.write(claim))

    def _register_as_process(self, tx: Tx, worker: str, queue: str) -> None:
        if worker in self._registered and tx.conn.execute(self._sql.registry.touch(worker)).first() is not None:
            return
        self._registered[worker] = {"kind": "library", "queue": queue, "host": socket.gethostname(), "pid": os.getpid()}
        self._register(tx, worker)

    def _remember(self, job: Job | None) -> Job | None:
        """A committed claim's lease, for update_status without one."""
        if job is not None:
            self._claims.remember(job.id, job.lease_id)
        return job

    def _claim(self, tx: Tx, worker_id: str, queue: str, lease: float) -> Job | None:
        row = self._sql.claim.run(tx, queue, worker_id, lease)
        if row is None:  # nothing due, the queue is paused, or every seat is taken
            return None
        tx.seat_taken(queue)
        return rows.job_from(row)

    def candidate_query(self, queue: str) -> Any:
        """The claim's SELECT for one queue with its value inlined, for EXPLAIN in tests."""
        return self._sql.claim.candidate().params(w_queue=queue)

    @checked
    def heartbeat(
        self,
        job_id: int,
        lease_id: int,
        *,
        lease_seconds: float | None = None,
        agent_status: AgentStatus | None = None,
    ) -> datetime:
        word = AgentStatus(agent_status) if agent_status is not None else None
        renewal = self._sql.moves.renewal(job_id, lease_id, lease_seconds or None, self.settings.lease_seconds, word)

        def renew(tx: Tx) -> datetime:
            row = tx.conn.execute(renewal).first()
            if row is None:
                raise LeaseLost(job_id, lease_id, self._lock_job(tx, job_id).status)
            if row.stop_request:
                raise StopRequested(job_id, row.stop_request, row.stop_reason)
            expires: datetime = row.lease_expires_at
            return expires

        return self._tx.write(renew)

    @checked
    def update_status(
        self,
        job_id: int,
        status: Status | str,
        *,
        lease_id: int | None = None,
        result: JSON = None,
        error: str | None = None,
        timed_out: bool = False,
    ) -> Job:
        target = Status(status)
        lease = self._claims.lease_of(job_id) if lease_id is None else lease_id
        return self._ending(job_id, lease, lambda tx: self._finish(tx, job_id, lease, target, result, error, timed_out))

    def _ending(self, job_id: int, lease_id: int, end: Callable[[Tx], Job]) -> Job:
        """Write a move that ends this lease's claim; the handle forgets the claim once it is over."""
        try:
            done = self._tx.write(end)
        except LeaseLost:
            self._claims.forget(job_id, lease_id)
            raise
        self._claims.forget(job_id, lease_id)
        return done

    @checked
    def finish_and_claim(
        self,
        job_id: int,
        status: Status | str,
        *,
        lease_id: int,
        worker_id: str,
        result: JSON = None,
        error: str | None = None,
        timed_out: bool = False,
        queue: str | None = None,
        lease_seconds: float | None = None,
    ) -> tuple[Job, Job | None]:
        target = Status(status)
        queue = queue or self.settings.queue
        lease = lease_seconds or self.settings.lease_seconds

        def finish_then_claim(tx: Tx) -> tuple[Job, Job | None]:
            tx.expect_claim(queue)
            done = self._finish(tx, job_id, lease_id, target, result, error, timed_out)
            return done, self._claim(tx, worker_id, queue, lease)

        done, claimed = self._tx.write(finish_then_claim)
        self._claims.forget(job_id, lease_id)
        return done, self._remember(claimed)

    @checked
    def hold_next(self, worker_id: str, *, behind_job: int, behind_lease: int, queue: str | None = None) -> Job | None:
        queue = queue or self.settings.queue

        def hold(tx: Tx) -> Job | None:
            row = self._sql.holds.hold(tx, queue, worker_id, behind_job, behind_lease)
            return None if row is None else rows.job_from(row)

        return self._tx.write(hold)

    @checked
    def rehearse_hand_off(self, queue: str | None = None) -> None:
        queue = queue or self.settings.queue

        def rehearse(tx: Tx) -> None:
            self._sql.holds.rehearse(tx, queue)
            with contextlib.suppress(PQError):  # no such job: the outcome's statements ran all the same
                self._finish(tx, -1, -1, Status.PROCESSED, None, None, False)
            raise _Rehearsed

        with contextlib.suppress(_Rehearsed):
            self._tx.write(rehearse)

    @checked
    def finish_and_start(
        self,
        job_id: int,
        status: Status | str,
        *,
        lease_id: int,
        worker_id: str,
        held_job: int,
        result: JSON = None,
        error: str | None = None,
        timed_out: bool = False,
        lease_seconds: float | None = None,
    ) -> tuple[Job, Job]:
        target = Status(status)
        lease = lease_seconds or self.settings.lease_seconds

        def finish_then_start(tx: Tx) -> tuple[Job, Job]:
            done = self._finish(tx, job_id, lease_id, target, result, error, timed_out)
            started = self._sql.holds.start(tx, held_job, lease_id, worker_id, lease)
            if started is None:  # rolls the outcome back: the seat is not freed while the held process may run
                raise HoldGone(held_job, lease_id)
            row, left = started
            message = f"attempt {row.attempts} of {row.max_attempts}, lease {row.lease_id}, held ahead"
            self._sql.moves.write_event(tx, row.id, left, Status.UNDER_PROCESS, worker_id, message)
            tx.seat_taken(row.queue)
            return done, rows.job_from(row)

        done, started = self._tx.write(finish_then_start)
        self._claims.forget(job_id, lease_id)
        self._remember(started)
        return done, started

    def _finish(
        self, tx: Tx, job_id: int, lease_id: int, target: Status, result: JSON, error: str | None, timed_out: bool
    ) -> Job:
        """Record a worker's outcome for the job its lease holds."""
        if target == Status.PROCESSED:
            # The common case needs nothing from the row first: one fenced UPDATE, no locking read.
            row = self._sql.moves.processed(tx, job_id, lease_id, result)
            if row is None:
                raise LeaseLost(job_id, lease_id, self._lock_job(tx, job_id).status)
            return self._after_move(tx, row)
        current = self._held(tx, job_id, lease_id)
        move = policy.worker_failed(
            target,
            attempts=current.attempts,
            max_attempts=rows.attempt_limit_of(current),
            error=error,
            stop_request=current.stop_request,
            stop_reason=current.stop_reason,
            backoff=rows.backoff_of(current, self.settings),
            timed_out=timed_out,
            timeouts=current.timeouts,
            timeout_retries=rows.timeout_retries_of(current, self.settings),
        )
        return self._after_move(tx, self._apply(tx, current, move, current.worker_id or "worker", lease_id))

    @checked
    def release(self, job_id: int, lease_id: int, *, reason: str = "consumer shutting down") -> Job:

        def give_back(tx: Tx) -> Job:
            current = self._held(tx, job_id, lease_id)
            worker = current.worker_id or "worker"
            return self._after_move(tx, self._apply(tx, current, released(reason), worker, lease_id))

        return self._ending(job_id, lease_id, give_back)

    @checked
    def rescue_expired(self, *, actor: str = "rescue", watch: SilenceWatch | None = None) -> list[tuple[int, Status]]:
        margin = policy.lease_margin(self.settings.lease_seconds)

        def rescue(tx: Tx) -> list[tuple[int, Status]]:
            expired = tx.conn.execute(self._sql.moves.expired(margin)).all()
            if watch is not None:
                now = time.monotonic()
                stamps = tx.conn.execute(self._sql.moves.lease_stamps()).all()
                watch.observe([(stamp.id, stamp.lease_id, stamp.lease_expires_at) for stamp in stamps], now)
                silent = watch.silent_leases(now, stamps, self.settings.lease_seconds)
                expired = [job for job in expired if (job.id, job.lease_id) in silent]
            tx.conn.execute(self._sql.registry.forget(FORGET_WORKERS_AFTER_SECONDS))
            return [self._rescue_one(tx, job, actor) for job in expired]

        return self._tx.write(rescue)

    def _rescue_one(self, tx: Tx, job: Any, actor: str) -> tuple[int, Status]:
        move = policy.lease_expired(
            attempts=job.attempts,
            max_attempts=rows.attempt_limit_of(job),
            lease_id=job.lease_id,
            worker_id=job.worker_id,
            stop_request=job.stop_request,
            stop_reason=job.stop_reason,
            backoff=rows.backoff_of(job, self.settings),
        )
        self._after_move(tx, self._apply(tx, job, move, actor, job.lease_id))
        return job.id, move.target

    @checked
    def wait_for_work(self, timeout: float, *, queue: str | None = None, wake: int | None = None) -> bool:
        if self._waiter is None:
            self._waiter = make_waiter(self.engine, self.channel)
        queue = queue or self.settings.queue
        return self._waiter.wait(timeout, lambda: self._work_ready(queue), wake)

    def _work_ready(self, queue: str) -> tuple[bool, float | None]:
        """(a claim could succeed now, seconds until the next delayed job is due).

        Idle consumers run this on every change to the database, so it is cheap: a full or
        paused queue answers after one statement.
        """
        claim = self._sql.claim
        with self._tx.read() as conn:
            seats, paused, running = conn.execute(claim.seats, {"w_queue": queue}).one()
            if paused or running >= seats:
                return False, None
            if conn.execute(claim.due, {"w_queue": queue}).first() is not None:
                return True, None
            next_due = conn.execute(claim.next_due(queue)).scalar()  # reads every waiting job of the queue
        return False, next_due

    # -- operators --------------------------------------------------------------------------

    @checked
    def requeue(
        self, job_id: int, *, actor: str = "admin", expect: Status | None = None, message: str | None = None
    ) -> Job:

        def back_to_queue(tx: Tx) -> Job:
            current = self._check_move(tx, job_id, "requeue", expect)
            return self._after_move(tx, self._apply(tx, current, requeued(message), actor))

        return self._tx.write(back_to_queue)

    @checked
    def cancel(
        self, job_id: int, *, actor: str = "admin", expect: Status | None = None, reason: str | None = None
    ) -> Job:
        return self._stop(job_id, "cancel", Status.CANCELLED, actor, expect, reason or f"cancelled by {actor}")

    @checked
    def fail(self, job_id: int, reason: str, *, actor: str = "admin", expect: Status | None = None) -> Job:
        return self._stop(job_id, "fail", Status.MANUAL_INTERVENTION, actor, expect, reason)

    def _stop(self, job_id: int, operation: str, target: Status, actor: str, expect: Status | None, reason: str) -> Job:
        def stop(tx: Tx) -> Job:
            current = self._check_move(tx, job_id, operation, expect)
            status = Status(current.status)
            if status == Status.UNDER_PROCESS:
                # The seat stays taken until the worker has really stopped the algorithm.
                return rows.job_from(self._apply(tx, current, stop_requested(status, operation, target, reason), actor))
            move = stopped_by_operator(target, reason)
            return self._after_move(tx, self._apply(tx, current, move, actor))

        return self._tx.write(stop)

    @checked
    def redeliver(self, job_id: int, *, actor: str = "admin") -> Delivery:
        outbox = self._sql.outbox

        def again(tx: Tx) -> Delivery:
            job = self._lock_job(tx, job_id)
            if job.status not in FINAL or not job.callback_url:
                raise InvalidTransition(
                    job_id, job.status, "redeliver", "a job in " + describe(FINAL) + " with a callback_url"
                )
            latest = tx.conn.execute(outbox.latest(job_id)).first()
            if latest is None:
                delivery_id = self._queue_delivery(tx, job)
            else:
                delivery_id = latest.id
                tx.conn.execute(outbox.again(delivery_id))
            status = Status(job.status)
            self._sql.moves.write_event(tx, job_id, status, status, actor, "callback redelivery requested")
            return rows.delivery_from(tx.conn.execute(outbox.one(delivery_id)).one())

        return self._tx.write(again)

    @checked
    def pause(self, queue: str | None = None, *, actor: str = "admin") -> QueueInfo:
        paused = {"paused": True, "paused_at": self._sql.ctx.now, "paused_by": actor}
        return self._set_queue(queue or self.settings.queue, paused)

    @checked
    def resume(self, queue: str | None = None, *, actor: str = "admin") -> QueueInfo:
        return self._set_queue(queue or self.settings.queue, RESUMED)

    @checked
    def relay_go(self, queue: str | None = None, *, actor: str = "admin") -> QueueInfo:

        def go(tx: Tx) -> QueueInfo:
            name = queue if queue is not None else self._waiting_relay_queue(tx)
            if tx.conn.execute(self._sql.reads.queue_setting(name)).first() is None:
                raise QueueNotFound(name, f"queue {name!r} does not exist; a go resumes a queue, it never creates one")
            tx.conn.execute(self._sql.registry.set_queue(name, RESUMED))
            tx.wake(name)
            return rows.queue_info_from(name, tx.conn.execute(self._sql.reads.queue_setting(name)).one(), self.settings)

        return self._tx.write(go)

    def _waiting_relay_queue(self, tx: Tx) -> str:
        served = tx.conn.execute(self._sql.reads.relay_queues()).all()
        waiting = [row.name for row in served if row.paused]
        if len(waiting) == 1 or (not waiting and len(served) == 1):
            return waiting[0] if waiting else str(served[0].name)
        if not served:
            raise QueueNotFound(None, "no relay is registered, so no queue waits for a go; name the queue")
        names = waiting or [row.name for row in served]
        words = "wait for a go" if waiting else "are served by relays, none paused"
        raise AmbiguousQueue(names, f"several queues {words} ({', '.join(names)}); name the one to go")

    @checked
    def set_seats(self, queue: str, seats: int) -> QueueInfo:
        return self.set_queue_policy(queue, seats=seats)

    @checked
    def set_queue_policy(
        self,
        queue: str,
        *,
        seats: int | None = None,
        max_attempts: int | None = None,
        job_timeout: float | None = None,
        lease_seconds: float | None = None,
        retry_backoff_seconds: float | None = None,
        timeout_retries: int | None = None,
        actor: str = "admin",
    ) -> QueueInfo:
        given = {
            "seats": seats,
            "max_attempts": max_attempts,
            "job_timeout": job_timeout,
            "lease_seconds": lease_seconds,
            "retry_backoff_seconds": retry_backoff_seconds,
            "timeout_retries": timeout_retries,
        }
        return self._set_queue(queue, {name: value for name, value in given.items() if value is not None}, actor=actor)

    @checked
    def adopt_queue(self, queue: str | None = None, *, lease_seconds: float | None = None) -> QueueInfo:
        defaults = policy.policy_defaults(self.settings) | (
            {"lease_seconds": lease_seconds} if lease_seconds is not None else {}
        )
        return self._set_queue(queue or self.settings.queue, defaults, adopt=True)

    def _set_queue(self, queue: str, values: dict[str, Any], *, adopt: bool = False, actor: str = "admin") -> QueueInfo:
        def upsert(tx: Tx) -> QueueInfo:
            ended: list[int] = []
            if values:
                tx.conn.execute(self._sql.registry.set_queue(queue, values, keep_stored=adopt))
                tx.wake(queue)
                if not adopt and "max_attempts" in values:
                    ended = self._end_over_limit(tx, queue, int(values["max_attempts"]), actor)
            row = tx.conn.execute(self._sql.reads.queue_setting(queue)).first()
            return replace(rows.queue_info_from(queue, row, self.settings), ended=tuple(ended))

        return self._tx.write(upsert)

    def _end_over_limit(self, tx: Tx, queue: str, limit: int, actor: str) -> list[int]:
        """Waiting jobs that already spent a (lowered) attempt limit go to manual_intervention, in
        the transaction that stored it: none is claimed for an attempt past its limit."""
        over = tx.conn.execute(self._sql.moves.over_limit(queue, limit)).all()
        for job in over:
            self._after_move(tx, self._apply(tx, job, policy.limit_lowered(job.attempts, limit, actor), actor))
        return [job.id for job in over]

    def queues(self) -> list[QueueInfo]:
        with self._tx.read() as conn:
            configured = {row.name: row for row in conn.execute(self._sql.reads.queue_settings())}
            names = set(configured) | set(conn.execute(self._sql.reads.queue_names()).scalars())
        return [rows.queue_info_from(name, configured.get(name), self.settings) for name in sorted(names)]

    @checked
    def queue_settings(self, queue: str) -> QueueInfo | None:
        with self._tx.read() as conn:
            row = conn.execute(self._sql.reads.queue_setting(queue)).first()
        return None if row is None else rows.queue_info_from(queue, row, self.settings)

    @checked
    def purge(
        self,
        older_than_seconds: float,
        status: Sequence[Status | str] = (Status.PROCESSED,),
        *,
        dry_run: bool = False,
        batch_size: int = 1000,
        on_batch: Callable[[int], None] | None = None,
    ) -> int:
        chosen = statuses(status) or []
        purge = self._sql.purge
        selection = purge.selection(chosen, older_than_seconds)
        if dry_run:
            with self._tx.read() as conn:
                return int(conn.execute(purge.count(selection)).scalar_one())
        total = 0
        while True:
            removed = self._tx.write(lambda tx: self._purge_batch(tx, selection, batch_size))
            total += removed
            if on_batch is not None:
                on_batch(removed)
            if removed < batch_size:
                return total

    def _purge_batch(self, tx: Tx, selection: ColumnElement[bool], batch_size: int) -> int:
        ids = list(tx.conn.execute(self._sql.purge.batch(selection, batch_size)).scalars())
        if ids:
            for statement in self._sql.purge.delete(ids):
                tx.conn.execute(statement)
        return len(ids)

    # -- the shared steps of every transition -----------------------------------------------

    def _lock_job(self, tx: Tx, job_id: int) -> Any:
        row = tx.conn.execute(self._sql.moves.locked_job, {"w_id": job_id}).first()
        if row is None:
            raise JobNotFound(job_id)
        return row

    def _held(self, tx: Tx, job_id: int, lease_id: int) -> Any:
        """The job, locked, if this lease still holds it; else LeaseLost."""
        current = self._lock_job(tx, job_id)
        if current.status != Status.UNDER_PROCESS.value or current.lease_id != lease_id:
            raise LeaseLost(job_id, lease_id, current.status)
        return current

    def _check_move(self, tx: Tx, job_id: int, operation: str, expect: Status | None) -> Any:
        current = self._lock_job(tx, job_id)
        allowed = ALLOWED_FROM[operation]
        if expect is not None and current.status != expect:
            raise InvalidTransition(job_id, current.status, operation, f"{expect} (as it was shown)")
        if current.status not in allowed:
            raise InvalidTransition(job_id, current.status, operation, describe(allowed))
        return current

    def _apply(self, tx: Tx, current: Any, move: Move, actor: str, lease_id: int | None = None) -> Any:
        """The move's one fenced UPDATE of the locked job `current`, and its event row; the new row."""
        from_status = Status(current.status)
        if from_status == Status.UNDER_PROCESS and move.target != Status.UNDER_PROCESS:
            self._sql.moves.fair.charge(tx, current)  # the run is over: its seat time is charged
        statement, params = self._sql.moves.update(current.id, from_status, move, lease_id)
        row = tx.conn.execute(statement, params).first()
        if row is None:  # the row is locked, so only a bug gets here
            raise PQError(f"job {current.id} changed during {from_status} -> {move.target}")
        self._sql.moves.write_event(tx, current.id, from_status, move.target, actor, move.message)
        return row

    def _after_move(self, tx: Tx, row: Any) -> Job:
        """Queue the callback of a final outcome, and wake consumers: a seat or a job is free
        (unless this transaction takes the freed seat itself)."""
        if row.status in FINAL and row.callback_url:
            self._queue_delivery(tx, row)
        tx.wake(row.queue)
        return rows.job_from(row)

    def _queue_delivery(self, tx: Tx, job: Any) -> int:
        delivery_id: int = tx.conn.execute(self._sql.outbox.queue(job, rows.callback_body(job))).scalar_one()
        return delivery_id

    # -- reading ----------------------------------------------------------------------------

    @checked
    def get_job(self, job_id: int) -> Job:
        with self._tx.read() as conn:
            row = conn.execute(self._sql.reads.job(job_id)).first()
            if row is None:
                raise JobNotFound(job_id)
            latest = conn.execute(self._sql.outbox.latest(job_id)).first()
        return rows.job_from(row, rows.delivery_from(latest) if latest is not None else None)

    @checked
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
        partner: str | None = None,
    ) -> Page:
        conditions = self._sql.reads.filters(statuses(status), queue, since_seconds, search, partner)
        after = int(cursor) if cursor is not None else None
        with self._tx.read() as conn:
            found = conn.execute(self._sql.reads.page(conditions, after, oldest_first, limit + 1)).all()
        items = [rows.job_from(row) for row in found[:limit]]
        next_cursor = str(items[-1].id) if len(found) > limit else None
        return Page(items=items, next_cursor=next_cursor)

    @checked
    def count_items(
        self,
        *,
        status: Status | str | Sequence[Status | str] | None = None,
        queue: str | None = None,
        since_seconds: float | None = None,
        search: str | None = None,
        partner: str | None = None,
    ) -> int:
        conditions = self._sql.reads.filters(statuses(status), queue, since_seconds, search, partner)
        with self._tx.read() as conn:
            return int(conn.execute(self._sql.reads.count(conditions)).scalar_one())

    @checked
    def next_items(self, *, queue: str | None = None, limit: int = 10, partner: str | None = None) -> list[Job]:
        with self._tx.read() as conn:
            found = conn.execute(self._sql.reads.next_waiting(queue, limit, partner)).all()
        return [rows.job_from(row) for row in found]

    @checked
    def holds(self, job_ids: Sequence[int]) -> dict[int, Hold]:
        wanted = sorted(set(job_ids))
        found: dict[int, Hold] = {}
        if not wanted:
            return found
        with self._tx.read() as conn:
            for start in range(0, len(wanted), HOLDS_READ):  # a bounded IN list per statement
                for row in conn.execute(self._sql.reads.holds(wanted[start : start + HOLDS_READ])):
                    found[row.job_id] = rows.hold_from(row)
        return found

    @checked
    def events(self, job_id: int) -> list[Event]:
        with self._tx.read() as conn:
            if conn.execute(self._sql.reads.job_id(job_id)).first() is None:
                raise JobNotFound(job_id)
            found = conn.execute(self._sql.reads.events(job_id)).all()
        return [rows.event_from(row) for row in found]

    @checked
    def stats(self, *, partner: str | None = None) -> Stats:
        reads = self._sql.reads
        with self._tx.read() as conn:
            counts: dict[str, dict[str, int]] = {}
            operator_failed: dict[str, int] = {}
            for row in conn.execute(reads.counts(partner)):
                counts.setdefault(row[0], {})[row[1]] = int(row[2])
                if row[3] and row[1] == Status.MANUAL_INTERVENTION.value:
                    operator_failed[row[0]] = operator_failed.get(row[0], 0) + int(row[3])
            oldest = conn.execute(reads.oldest_waiting(partner)).scalar()
            running = conn.execute(reads.running(partner)).all()
            delivery_counts = {row[0]: int(row[1]) for row in conn.execute(reads.delivery_counts(partner))}
            replication = rows.replication_from(conn.execute(reads.replication()).one())
            held = {row[0]: int(row[1]) for row in conn.execute(reads.held_counts(partner))}
        return Stats(
            counts=counts,
            oldest_waiting_seconds=float(oldest) if oldest is not None else None,
            running=[rows.running_from(row) for row in running],
            deliveries=delivery_counts,
            queues=self.queues(),
            replication=replication,
            operator_failed=operator_failed,
            held=held,
        )

    @checked
    def throughput(self, *, window_seconds: float = 3600, bucket_seconds: int = 60) -> list[ThroughputPoint]:
        with self._tx.read() as conn:
            found = conn.execute(self._sql.reads.throughput(window_seconds, bucket_seconds)).all()
        return [ThroughputPoint(bucket_start=r[0], status=Status(r[1]), count=int(r[2])) for r in found]

    @checked
    def waiting_changes(self, *, window_seconds: float = 3600, bucket_seconds: int = 60) -> list[tuple[datetime, int]]:
        with self._tx.read() as conn:
            found = conn.execute(self._sql.reads.waiting_changes(window_seconds, bucket_seconds)).all()
        return [(row[0], int(row[1])) for row in found if row[1]]

    @checked
    def run_durations(self, *, window_seconds: float = 3600, limit: int = 5000) -> list[float]:
        with self._tx.read() as conn:
            durations = conn.execute(self._sql.reads.run_durations(window_seconds, limit)).scalars()
            return [float(value) for value in durations]

    def now(self) -> datetime:
        with self._tx.read() as conn:
            moment: datetime = conn.execute(self._sql.reads.now()).scalar_one()
        return moment

    def ping(self) -> None:
        with self._tx.read() as conn:
            read_only = conn.execute(self._sql.reads.ping()).scalar()
        if read_only:
            raise DatabaseReadOnly(f"database takes no writes: {read_only}; waiting for a writable primary")

    def replication(self) -> Replication:
        with self._tx.read() as conn:
            return rows.replication_from(conn.execute(self._sql.reads.replication()).one())

    # -- workers ----------------------------------------------------------------------------

    @checked
    def register_worker(self, worker_id: str, *, kind: str, queue: str, host: str, pid: int) -> None:
        self._registered[worker_id] = {"kind": kind, "queue": queue, "host": host, "pid": pid}
        self._tx.write(lambda tx: self._register(tx, worker_id))

    def _register(self, tx: Tx, worker_id: str) -> None:
        tx.conn.execute(self._sql.registry.register(worker_id, self._registered[worker_id]))

    @checked
    def touch_worker(self, worker_id: str) -> None:

        def touch(tx: Tx) -> None:
            seen = tx.conn.execute(self._sql.registry.touch(worker_id)).first()
            if seen is None and worker_id in self._registered:
                self._register(tx, worker_id)  # forgotten while this program was cut off for a day

        self._tx.write(touch)

    @checked
    def unregister_worker(self, worker_id: str) -> None:
        self._registered.pop(worker_id, None)
        self._tx.write(lambda tx: tx.conn.execute(self._sql.registry.unregister(worker_id)))

    def workers(self) -> list[Worker]:
        with self._tx.read() as conn:
            found = conn.execute(self._sql.reads.workers()).all()
        return [rows.worker_from(row) for row in found]

    # -- callback outbox --------------------------------------------------------------------

    @checked
    def claim_deliveries(self, worker_id: str, *, limit: int = 10, lock_seconds: float = 60) -> list[Delivery]:
        outbox = self._sql.outbox

        def claim(tx: Tx) -> list[Delivery]:
            due = list(tx.conn.execute(outbox.due(limit)).scalars())
            if not due:
                return []
            found = tx.conn.execute(outbox.lock(due, worker_id, lock_seconds)).all()
            return sorted((rows.delivery_from(row) for row in found), key=lambda d: d.id)

        return self._tx.write(claim)

    @checked
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
        outbox = self._sql.outbox
        statement = outbox.record(
            delivery_id,
            held_by,
            delivered=delivered,
            status_code=status_code,
            error=error,
            retry_in_seconds=retry_in_seconds,
        )

        def record(tx: Tx) -> Delivery:
            row = tx.conn.execute(statement).first()
            if row is not None:
                return rows.delivery_from(row)
            if held_by is not None and tx.conn.execute(outbox.exists(delivery_id)).first():  # held by another now
                raise DeliveryLockLost(delivery_id, held_by)
            raise InvalidInput("delivery_id", f"no delivery {delivery_id}")

        return self._tx.write(record)

    @checked
    def delivery(self, job_id: int) -> Delivery | None:
        with self._tx.read() as conn:
            row = conn.execute(self._sql.outbox.latest(job_id)).first()
        return rows.delivery_from(row) if row is not None else None

    # -- maintenance ------------------------------------------------------------------------

    @checked
    def backup(self, path: str) -> None:
        self.dialect.backup(self.engine, path)

    def describe(self) -> str:
        return describe_url(self.engine.url.render_as_string(hide_password=False))

    def close(self) -> None:
        for worker, about in list(self._registered.items()):
            if about["kind"] == "library":  # this process claimed without a worker id: it is done
                with contextlib.suppress(PQError):
                    self.unregister_worker(worker)
        if self._waiter is not None:
            self._waiter.close()
            self._waiter = None
        self.engine.dispose()
