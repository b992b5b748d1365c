"""Jobs claimed ahead for a consumer's seat: the hold, its start, and which holds still stand.

A consumer whose job N runs (under lease L) may hold its next job N+1 (the seat's hand-off,
docs/architecture.md). The held job stays waiting with its attempt uncounted; a hold *stands*
while L is still a running job's lease, and no claim takes a job whose hold stands. It starts
in the transaction that records N's outcome (`start`): an ordinary claim's values, fenced by the
hold. A hold whose lease ended otherwise (N recorded alone, rescued, released) no longer stands:
the job is claimable again, its attempt unspent.

A lapsed hold stays as a mark until its job is final (`lapsed` then deletes it): the database
cannot tell whether the held process began (it starts by itself once N's process has ended, and
a consumer killed before the start was recorded leaves no word). So such a job may have run once
uncounted, and it is never held again: when the fair share picks it for a hold, nothing is held,
and N's end claims it, its attempt counted before it starts. A job that kills its consumer as it
begins therefore runs at most once without spending an attempt (docs/architecture.md, "The
seat's hand-off", the attempt rule).
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

from sqlalchemy import Float, and_, bindparam, delete, exists, func, literal, or_, select, update
from sqlalchemy import Text as SQLText

from pqueue.schema import holds, jobs, partners
from pqueue.sql.claim import Claim, claimable, not_held, standing
from pqueue.sql.context import Context
from pqueue.states import FINAL, Status
from pqueue.transactions import Tx

FINAL_VALUES = [status.value for status in FINAL]


class Holds:
    """The hold and the start of a held job; the queue is bound as :w_queue."""

    def __init__(self, ctx: Context, claim: Claim) -> None:
        self.ctx = ctx
        self.claim = claim

    def hold(self, tx: Tx, queue: str, worker_id: str, behind_job: int, behind_lease: int) -> Any | None:
        """Hold the job the fair share gives this seat next: the job's row, or None when the
        lease is no longer this running job's, it already holds one, the queue is paused or has
        fewer seats than running jobs, or nothing is due. The pick counts the running job's seat
        time so far (the fair share's live term); the claim's fair-share bookkeeping is done now."""
        tx.lock_seats(queue)  # serialised with every claim of the queue (PostgreSQL)
        params = {"w_queue": queue, "w_behind": behind_job, "w_lease": behind_lease, "w_worker": worker_id}
        seats, paused, running = tx.conn.execute(self.claim.seats, {"w_queue": queue}).one()
        if paused or running > seats:  # the running job's own seat counts in `running`
            return None
        if tx.conn.execute(self._behind_runs, params).first() is None:
            return None
        if tx.conn.execute(self._holds_one, params).first() is not None:
            return None
        picked = tx.conn.execute(self._pick, params).first()
        if picked is None:
            return None
        if tx.conn.execute(self._held_before, {"w_id": picked.id}).first() is not None:
            return None  # it may have run once uncounted: it goes next by a claim, counted first
        row = {"job_id": picked.id, "behind_job": behind_job, "behind_lease": behind_lease, "worker_id": worker_id}
        tx.conn.execute(self.lapsed)
        tx.conn.execute(holds.insert().values(**row, held_at=self.ctx.now))
        tag = tx.conn.execute(self._floor, {"w_queue": queue, "w_partner": picked.partner}).scalar_one()
        tx.conn.execute(self._clock, {"w_queue": queue, "w_tag": tag})
        return picked

    def rehearse(self, tx: Tx, queue: str) -> None:
        """Run every statement of `hold` and `start` once with values no row has, in a transaction
        the caller rolls back: their first build and compile (tens of milliseconds, hundreds on a
        loaded machine) happen then, not while a consumer's first job runs."""
        params = {"w_queue": queue, "w_behind": -1, "w_lease": -1, "w_worker": ""}
        tx.lock_seats(queue)
        tx.conn.execute(self.claim.seats, {"w_queue": queue}).all()
        for statement in (self._behind_runs, self._holds_one, self._pick):
            tx.conn.execute(statement, params).all()
        tx.conn.execute(self._held_before, {"w_id": -1}).all()
        tx.conn.execute(self.lapsed)
        tx.conn.execute(self._floor, {"w_queue": queue, "w_partner": ""}).all()
        tx.conn.execute(self._clock, {"w_queue": queue, "w_tag": 0.0})
        tx.conn.execute(self._held, {"w_id": -1, "w_lease": -1}).all()
        tx.conn.execute(self._below_cap, {"w_queue": queue, "w_partner": ""}).all()
        values = {"w_id": -1, "w_from": Status.UNPROCESSED.value, "w_worker": "", "w_lease_seconds": 1.0}
        tx.conn.execute(self._start, values).all()

    def start(
        self, tx: Tx, job_id: int, behind_lease: int, worker_id: str, lease_seconds: float
    ) -> tuple[Any, Status] | None:
        """Claim the held job for the worker (call after its lease's job is recorded, in the same
        transaction): the claimed row and the status it left, or None when the hold is gone, the
        job is no longer waiting (an operator cancelled it meanwhile) or its partner reached its
        cap of running jobs meanwhile (another consumer claimed one of its jobs). No seat check:
        the seat passes from the job just recorded to this one in this transaction; the cap is
        counted under the queue's seat lock, as the claim counts it."""
        params = {"w_id": job_id, "w_lease": behind_lease}
        held = tx.conn.execute(self._held, params).first()
        if held is None:
            return None
        tx.lock_seats(held.queue)
        if not tx.conn.execute(self._below_cap, {"w_queue": held.queue, "w_partner": held.partner}).scalar_one():
            return None
        values = {"w_id": job_id, "w_from": held.status, "w_worker": worker_id, "w_lease_seconds": lease_seconds}
        row = tx.conn.execute(self._start, values).first()
        assert row is not None, "the held job locked in this transaction is still waiting"
        tx.conn.execute(delete(holds).where(holds.c.job_id == job_id))
        return row, Status(held.status)

    @cached_property
    def _floor(self) -> Any:
        """The claim's F_p <- max(F_p, V), on both backends (the PostgreSQL claim does it in its statement)."""
        return self.claim.fair.floor_values(
            bindparam("w_queue", type_=SQLText()), bindparam("w_partner", type_=SQLText())
        )

    @cached_property
    def _clock(self) -> Any:
        """The claim's V <- max(V, F_p)."""
        return self.claim.fair.clock_values(bindparam("w_queue", type_=SQLText()), bindparam("w_tag", type_=Float()))

    @cached_property
    def lapsed(self) -> Any:
        """Delete every lapsed hold whose job is final or gone (each hold runs it): the rest are
        the marks of jobs that may have run once uncounted, at most one per job that lost a hold."""
        alive = select(literal(1)).where(jobs.c.id == holds.c.job_id, jobs.c.status.not_in(FINAL_VALUES))
        return delete(holds).where(~standing(), ~exists(alive))

    @cached_property
    def _held_before(self) -> Any:
        """The job's lapsed hold, if any (the pick takes no job whose hold stands)."""
        return select(holds.c.job_id).where(holds.c.job_id == bindparam("w_id"))

    @cached_property
    def _behind_runs(self) -> Any:
        """The running job, under that lease, in this queue, of this worker: a seat holds only its own next job."""
        lease = and_(jobs.c.id == bindparam("w_behind"), jobs.c.lease_id == bindparam("w_lease"))
        own = and_(jobs.c.worker_id == bindparam("w_worker"), jobs.c.queue == bindparam("w_queue"))
        return select(jobs.c.id).where(lease, own, jobs.c.status == Status.UNDER_PROCESS.value)

    @cached_property
    def _holds_one(self) -> Any:
        return select(holds.c.job_id).where(holds.c.behind_lease == bindparam("w_lease"))

    @cached_property
    def _pick(self) -> Any:
        due = and_(claimable(), not_held())
        picked = select(*jobs.c).where(jobs.c.queue == bindparam("w_queue"), jobs.c.id == self.claim.fair.next_job(due))
        return picked.with_for_update(skip_locked=True)  # (SQLite: BEGIN IMMEDIATE already serialises)

    @cached_property
    def _held(self) -> Any:
        hold = select(literal(1)).where(holds.c.job_id == jobs.c.id, holds.c.behind_lease == bindparam("w_lease"))
        picked = select(jobs.c.id, jobs.c.status, jobs.c.queue, jobs.c.partner)
        return picked.where(jobs.c.id == bindparam("w_id"), claimable(), exists(hold)).with_for_update()

    @cached_property
    def _below_cap(self) -> Any:
        """Whether the partner runs fewer jobs in the queue than its cap (true without a cap)."""
        partner = bindparam("w_partner", type_=SQLText())
        running = (
            select(func.count())
            .where(
                jobs.c.queue == bindparam("w_queue", type_=SQLText()),
                jobs.c.partner == partner,
                jobs.c.status == Status.UNDER_PROCESS.value,
            )
            .scalar_subquery()
        )
        cap = select(partners.c.max_running).where(partners.c.name == partner).scalar_subquery()
        return select(or_(cap.is_(None), running < cap))

    @cached_property
    def _start(self) -> Any:
        return (
            update(jobs)
            .where(jobs.c.id == bindparam("w_id"), jobs.c.status == bindparam("w_from"))
            .values(**self.claim.values())
            .returning(*jobs.c)
        )
