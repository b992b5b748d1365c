"""The claim: the next due job of a queue with a free seat, taken with a fresh lease and its event
row; and the read-only checks idle consumers run before they try one.

The two backends claim in statements of different shapes, side by side below:

- SQLite (`SQLiteClaim`): BEGIN IMMEDIATE already holds the write lock, so nothing else can
  claim meanwhile. The pick writes the claim's event row and returns the job's id and status,
  then the fenced UPDATE takes the job: two statements.
- PostgreSQL (`PostgresClaim`): the queue's advisory seat lock, in a statement of its own (the
  next statement's READ COMMITTED snapshot then counts every claim committed before it), then
  candidate, claim and event row in one statement: two round trips.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

from sqlalchemy import (
    BigInteger,
    Float,
    and_,
    bindparam,
    case,
    cast,
    exists,
    func,
    literal,
    literal_column,
    select,
    update,
)
from sqlalchemy import Text as SQLText
from sqlalchemy.sql.elements import ColumnElement

from pqueue.direct import DirectStatement
from pqueue.schema import events, holds, jobs, queues
from pqueue.sql.context import Context, stored_policy
from pqueue.sql.fair import FairShare
from pqueue.sql.ids import next_lease_id
from pqueue.sql.moves import with_event
from pqueue.states import CLAIMABLE, Status
from pqueue.transactions import Tx


def claimable() -> ColumnElement[bool]:
    """status IN ('unprocessed', 'crashed') with the values written into the SQL, not bound.

    SQLite uses a partial index only when the query's condition matches the index's own
    condition, and bound values never match: with them the claim was a full scan and sort
    (80 ms with 100,000 jobs stored) instead of one step down ix_pq_jobs_claim.
    """
    return jobs.c.status.in_([literal_column(f"'{status.value}'") for status in CLAIMABLE])


def standing(hold: Any = holds) -> ColumnElement[bool]:
    """A hold (pqueue/sql/holds.py) stands: the lease it waits behind is still a running job's."""
    behind = jobs.alias("behind")
    return exists(
        select(literal(1)).where(
            behind.c.id == hold.c.behind_job,
            behind.c.lease_id == hold.c.behind_lease,
            behind.c.status == Status.UNDER_PROCESS.value,
        )
    )


def not_held() -> ColumnElement[bool]:
    """The job at hand (a row of pq_jobs in the enclosing query) has no standing hold: one probe
    of pq_holds by its key, which is empty unless consumers claim ahead."""
    return ~exists(select(literal(1)).where(holds.c.job_id == jobs.c.id, standing()))


def attempt_limit() -> ColumnElement[Any]:
    """The claimed job's max_attempts: its own if its submitter gave one, else its queue's stored
    policy as it is now, so `pq queue set --max-attempts` reaches jobs already waiting."""
    own = jobs.c.max_attempts_given == True  # noqa: E712 - SQL
    return case((own, jobs.c.max_attempts), else_=func.coalesce(stored_policy("max_attempts"), jobs.c.max_attempts))


def claim_message(attempt: ColumnElement[Any], max_attempts: ColumnElement[Any], lease: ColumnElement[Any]) -> Any:
    """The claim's event message, 'attempt N of M, lease L', built in SQL from the claimed row."""
    attempt_text, max_text, lease_text = (cast(number, SQLText()) for number in (attempt, max_attempts, lease))
    return literal("attempt ", SQLText()) + attempt_text + " of " + max_text + ", lease " + lease_text


class Claim:
    """What both backends' claims share: the pick with its seat check, the claim's values, and
    the read-only checks of a queue bound as :w_queue."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.fair = FairShare(ctx)

    def run(self, tx: Tx, queue: str, worker_id: str, lease_seconds: float) -> Any | None:
        """Claim the queue's next job for the worker: the claimed row (every column), or None
        when nothing is due, the queue is paused or every seat is taken."""
        raise NotImplementedError

    def pick(self, *columns: ColumnElement[Any]) -> Any:
        """The job of :w_queue the fair share gives the next seat (pqueue/sql/fair.py), if the
        queue has a free seat and is not paused; each partner's next job is one step down the
        partial claim index (a test guards the plan). The seat check is part of this statement:
        one statement fewer per claim, and it reads the same snapshot as the candidate."""
        seats, paused, running = self.seat_expressions()
        due = select(*columns).where(jobs.c.id == self.fair.next_job(and_(claimable(), not_held())), claimable())
        return self.ctx.dialect.first_if(due, and_(running < seats, paused == False))  # noqa: E712 - SQL

    def candidate(self) -> Any:
        """The pick as PostgreSQL locks it: rows an operator is changing right now are skipped,
        not waited for."""
        return self.pick(jobs.c.id, jobs.c.status).with_for_update(skip_locked=True)

    def seat_expressions(self) -> tuple[ColumnElement[Any], ColumnElement[Any], ColumnElement[Any]]:
        """(seats, paused, running) of the queue bound as :w_queue, as scalar SQL expressions."""
        name: Any = bindparam("w_queue")
        settings = select(queues.c.seats, queues.c.paused).where(queues.c.name == name).subquery()
        running = (
            select(func.count())
            .select_from(jobs)
            .where(jobs.c.queue == name, jobs.c.status == Status.UNDER_PROCESS.value)
            .scalar_subquery()
        )
        seats = func.coalesce(select(settings.c.seats).scalar_subquery(), self.ctx.max_running)
        paused = func.coalesce(select(settings.c.paused).scalar_subquery(), False)
        return seats, paused, running

    def values(self) -> dict[str, Any]:
        """What a claim sets: under_process, one attempt more, the next lease, for :w_worker.

        The lease is the queue's stored one, read in this same statement, else :w_lease_seconds
        (the claimer's PQ_LEASE_SECONDS); the row keeps which, for the heartbeats and rescuers.
        So is the attempt limit, unless the job came with its own."""
        now = self.ctx.now
        lease = func.coalesce(stored_policy("lease_seconds"), bindparam("w_lease_seconds", type_=Float()))
        lease_ms = cast(lease * 1000, BigInteger())
        return {
            "status": Status.UNDER_PROCESS.value,
            "attempts": jobs.c.attempts + 1,
            "max_attempts": attempt_limit(),
            "lease_id": next_lease_id(self.ctx.dialect.name, jobs.c.lease_id),
            "worker_id": bindparam("w_worker"),
            "lease_ms": lease_ms,
            "lease_expires_at": self.ctx.dialect.add_seconds(now, lease),
            "started_at": now,
            "finished_at": None,
            "stop_request": None,
            "stop_reason": None,
            "agent_status": None,
        }

    @cached_property
    def seats(self) -> Any:
        """Seats, paused and running count of :w_queue."""
        return select(*self.seat_expressions())

    @cached_property
    def due(self) -> Any:
        """A job of :w_queue that could be claimed now (read-only: no row locks)."""
        waiting = and_(jobs.c.queue == bindparam("w_queue"), claimable())
        return select(jobs.c.id).where(waiting, jobs.c.run_after <= self.ctx.now, not_held()).limit(1)

    def next_due(self, queue: str) -> Any:
        """Seconds until the queue's next delayed job is due (it reads every waiting job of the queue)."""
        now = self.ctx.now
        waiting = and_(jobs.c.queue == queue, claimable())
        return select(func.min(self.ctx.dialect.seconds_between(jobs.c.run_after, now))).where(
            waiting, jobs.c.run_after > now
        )


class SQLiteClaim(Claim):
    """The pick writes the claim's event row, then the fenced UPDATE (BEGIN IMMEDIATE serialises writers)."""

    def run(self, tx: Tx, queue: str, worker_id: str, lease_seconds: float) -> Any | None:
        picked = self._pick_with_event.first(tx.conn, {"w_queue": queue, "w_worker": worker_id})
        if picked is None:
            return None
        params = {"w_id": picked.job_id, "w_from": picked.from_status, "w_worker": worker_id}
        row = self._update.first(tx.conn, {**params, "w_lease_seconds": lease_seconds})
        assert row is not None, "the job picked in this transaction is still there"
        self.fair.claimed(tx, queue, row.partner)
        return row

    @cached_property
    def _pick_with_event(self) -> DirectStatement:
        """The claim's event row, written by the statement that picks the job (it returns the
        job's id and status for the UPDATE)."""
        message = claim_message(jobs.c.attempts + 1, attempt_limit(), jobs.c.lease_id + 1)
        under_process = literal(Status.UNDER_PROCESS.value)
        picked = self.pick(jobs.c.id, jobs.c.status, under_process, self.ctx.now, bindparam("w_worker"), message)
        columns = ["job_id", "from_status", "to_status", "at", "actor", "message"]
        return self.ctx.direct(
            events.insert().from_select(columns, picked).returning(events.c.job_id, events.c.from_status)
        )

    @cached_property
    def _update(self) -> DirectStatement:
        return self.ctx.direct(
            update(jobs)
            .where(jobs.c.id == bindparam("w_id"), jobs.c.status == bindparam("w_from"))
            .values(**self.values())
            .returning(*jobs.c)
        )


class PostgresClaim(Claim):
    """The seat lock (once per transaction), then candidate, claim, event row and the fair share's
    bookkeeping in one statement."""

    def run(self, tx: Tx, queue: str, worker_id: str, lease_seconds: float) -> Any | None:
        tx.lock_seats(queue)
        return self._claim.first(tx.conn, {"w_queue": queue, "w_worker": worker_id, "w_lease_seconds": lease_seconds})

    @cached_property
    def _claim(self) -> DirectStatement:
        return self.ctx.direct(self.statement())

    def statement(self) -> Any:
        """The claim's FOR UPDATE SKIP LOCKED holds the candidate's row for the UPDATE."""
        candidate = self.candidate().cte("candidate")
        claimed = (
            update(jobs)
            .where(jobs.c.id == candidate.c.id)
            .values(**self.values())
            .returning(*jobs.c, candidate.c.status.label("from_status"))
            .cte("claimed")
        )
        message = claim_message(claimed.c.attempts, claimed.c.max_attempts, claimed.c.lease_id)
        floored = self.fair.floor_values(claimed.c.queue, claimed.c.partner).cte("floored")
        clocked = self.fair.clock_values(claimed.c.queue, floored.c.tag).cte("clocked")
        return with_event(self.ctx, claimed, claimed.c.from_status, message).add_cte(floored, clocked)


SHAPES: dict[str, type[Claim]] = {"sqlite": SQLiteClaim, "postgresql": PostgresClaim}
