"""The fair share of a queue's seats between partners: which partner's job a claim takes, and what
each run charges. The rule (start-time fair queuing on seat-seconds) is stated once, here; the
claim (pqueue/sql/claim.py) runs `next_job`, and the submitter's view can run the same pick.

Each partner p has, per queue, a tag F_p: the seconds its runs held a seat, divided by its weight.
The queue has a virtual time V: the tag of the partner last given a seat.

- pick:   among partners with a due job and fewer than their cap running in the queue, the lowest
          max(F_p, V) + (seconds its running jobs have held a seat so far) / w_p; ties go to the
          earlier head job. Within a partner: priority, then arrival (the claim index's order).
- claim:  F_p <- max(F_p, V) (a partner back from an idle spell starts at V, so idle time is not
          banked and a newcomer cannot hold the seat for hours), then V <- max(V, F_p).
- charge: every end of a run (processed, crashed, timed out, cancelled, rescued, released) adds
          (seconds from its claim to that moment) / w_p to F_p, in the outcome's own transaction.

With one partner the pick is today's order: priority, then arrival.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

from sqlalchemy import Float, and_, bindparam, func, literal, or_, select, update
from sqlalchemy import Text as SQLText
from sqlalchemy.sql.elements import ColumnElement

from pqueue.direct import DirectStatement
from pqueue.schema import fair, jobs, partners, queues
from pqueue.sql.context import Context
from pqueue.states import Status
from pqueue.transactions import Tx


class FairShare:
    """The fair-share statements of one context; the queue is bound as :w_queue."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def vtime(self, queue: ColumnElement[Any]) -> ColumnElement[Any]:
        """The queue's virtual time (0 before any claim)."""
        return func.coalesce(select(queues.c.vtime).where(queues.c.name == queue).scalar_subquery(), 0.0)

    def tags(self, claimable: ColumnElement[bool]) -> Any:
        """One row per partner: its next due job in :w_queue (`head`, NULL when none) and its
        tag now; partners at their cap of running jobs are left out."""
        now, queue = self.ctx.now, bindparam("w_queue", type_=SQLText())
        held = self.ctx.dialect.seconds_between(now, jobs.c.started_at)
        running = (
            select(jobs.c.partner, func.count().label("jobs"), func.sum(held).label("seconds"))
            .where(jobs.c.queue == queue, jobs.c.status == Status.UNDER_PROCESS.value)
            .group_by(jobs.c.partner)
            .subquery("running")
        )
        head = (
            select(jobs.c.id)
            .where(jobs.c.queue == queue, jobs.c.partner == partners.c.name, claimable, jobs.c.run_after <= now)
            .order_by(jobs.c.priority, jobs.c.id)
            .limit(1)
            .correlate(partners)
            .scalar_subquery()
        )
        floor = self.ctx.dialect.larger(func.coalesce(fair.c.tag, 0.0), self.vtime(queue))
        tag = floor + func.coalesce(running.c.seconds, 0.0) / partners.c.weight
        below_cap = or_(partners.c.max_running.is_(None), func.coalesce(running.c.jobs, 0) < partners.c.max_running)
        joined = partners.outerjoin(fair, and_(fair.c.queue == queue, fair.c.partner == partners.c.name)).outerjoin(
            running, running.c.partner == partners.c.name
        )
        return select(head.label("head"), tag.label("tag")).select_from(joined).where(below_cap).subquery("tags")

    def next_job(self, claimable: ColumnElement[bool]) -> ColumnElement[Any]:
        """The id of the job the fair share gives the next seat of :w_queue (NULL: none is due)."""
        tags = self.tags(claimable)
        return (
            select(tags.c.head)
            .where(tags.c.head.is_not(None))
            .order_by(tags.c.tag, tags.c.head)
            .limit(1)
            .scalar_subquery()
        )

    # -- the claim's bookkeeping --------------------------------------------------------------

    def floor_values(self, queue: ColumnElement[Any], partner: ColumnElement[Any]) -> Any:
        """INSERT of (queue, partner, V) that, on conflict, keeps the larger tag: the claim's
        F_p <- max(F_p, V). Returns the partner's tag."""
        insert = self.ctx.dialect.insert(fair)
        statement = insert.from_select(["queue", "partner", "tag"], select(queue, partner, self.vtime(queue)))
        larger = self.ctx.dialect.larger(fair.c.tag, insert.excluded.tag)
        return self.ctx.dialect.upsert_values(statement, ["queue", "partner"], {"tag": larger}).returning(fair.c.tag)

    def clock_values(self, queue: ColumnElement[Any], tag: ColumnElement[Any]) -> Any:
        """INSERT of the queue's row with V = tag that, on conflict, keeps the larger V."""
        insert = self.ctx.dialect.insert(queues)
        statement = insert.from_select(["name", "vtime"], select(queue, tag))
        larger = self.ctx.dialect.larger(queues.c.vtime, insert.excluded.vtime)
        return self.ctx.dialect.upsert_values(statement, ["name"], {"vtime": larger})

    def claimed(self, tx: Tx, queue: str, partner: str) -> None:
        """SQLite: a claim for `partner` in `queue` floors its tag at V and moves V on."""
        tag = self._floor.first(tx.conn, {"w_queue": queue, "w_partner": partner})
        assert tag is not None, "the upsert returns the row"
        self._clock.run(tx.conn, {"w_queue": queue, "w_tag": tag.tag})

    @cached_property
    def _floor(self) -> DirectStatement:
        return self.ctx.direct(self.floor_values(bindparam("w_queue"), bindparam("w_partner")))

    @cached_property
    def _clock(self) -> DirectStatement:
        return self.ctx.direct(self.clock_values(bindparam("w_queue"), bindparam("w_tag", type_=Float())))

    # -- charging -------------------------------------------------------------------------------

    def charge_values(self, queue: Any, partner: Any, started_at: Any) -> dict[str, Any]:
        """SET of a run's charge: the seconds since its claim, divided by its partner's weight."""
        weight = select(partners.c.weight).where(partners.c.name == partner).scalar_subquery()
        held = self.ctx.dialect.larger(self.ctx.dialect.seconds_between(self.ctx.now, started_at), literal(0.0))
        return {"tag": fair.c.tag + held / func.coalesce(weight, 1.0)}

    def charge(self, tx: Tx, run: Any) -> None:
        """Charge the running job of the row `run` to its partner: the seconds since its claim (read
        from the job, so call it while the job still holds its claim's started_at)."""
        self._charge.run(tx.conn, {"w_queue": run.queue, "w_partner": run.partner, "w_id": run.id})

    @cached_property
    def _charge(self) -> DirectStatement:
        queue, partner = bindparam("w_queue", type_=SQLText()), bindparam("w_partner", type_=SQLText())
        started = select(jobs.c.started_at).where(jobs.c.id == bindparam("w_id")).scalar_subquery()
        return self.ctx.direct(
            update(fair)
            .where(fair.c.queue == queue, fair.c.partner == partner)
            .values(**self.charge_values(queue, partner, started))
        )
