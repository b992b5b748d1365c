"""What the submitter's view (pqueue/waitline.py) reads of one queue, in one read transaction: the
queue's settings and virtual time, every partner's weight, cap and tag, the running jobs, each
partner's first waiting jobs in claim order, the live consumers, and the recent run times.

Each partner's waiting jobs are read as the claim takes them (priority, then id), one step down
the claim index per partner and at most `window` rows each, so the read stays small however many
jobs wait; a partner with more gets its count past the window instead.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, case, func, or_, select, union_all
from sqlalchemy.sql.elements import ColumnElement

from pqueue.schema import events, fair, holds, jobs, partner_events, partners, predictions, queues, workers
from pqueue.sql.claim import attempt_limit, claimable, not_held, standing
from pqueue.sql.context import Context
from pqueue.states import Status


def kind_of() -> ColumnElement[Any]:
    """The payload's "kind" as text (NULL when the payload is not an object or names none): a
    job kind has its own run-time model once enough of its runs were seen."""
    kind: ColumnElement[Any] = jobs.c.payload["kind"].as_string().label("kind")
    return kind


class WaitlineReads:
    """The read-only statements of the submitter's view, for one context."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._waiting: dict[tuple[str, tuple[str, ...], int], Any] = {}

    def clock(self) -> Any:
        """The database's clock now: the snapshot's one moment, which every time read below is
        measured from (in Python, so two statements' clocks never disagree by milliseconds)."""
        return select(self.ctx.now)

    def queue(self, queue: str) -> Any:
        """The queue's stored row (none before anything served or set it)."""
        return select(queues).where(queues.c.name == queue)

    @staticmethod
    def partners(queue: str) -> Any:
        """(name, weight, max_running, tag) of every partner, its tag in the queue (NULL: none yet)."""
        on_queue = and_(fair.c.queue == queue, fair.c.partner == partners.c.name)
        joined = partners.outerjoin(fair, on_queue)
        return (
            select(partners.c.name, partners.c.weight, partners.c.max_running, fair.c.tag)
            .select_from(joined)
            .order_by(partners.c.name)
        )

    def running(self, queue: str) -> Any:
        """(id, partner, started_at, lease_expires_at) of the queue's running jobs."""
        return (
            select(jobs.c.id, jobs.c.partner, jobs.c.started_at, jobs.c.lease_expires_at, kind_of())
            .where(jobs.c.status == Status.UNDER_PROCESS.value, jobs.c.queue == queue)
            .order_by(jobs.c.id)
        )

    def waiting(self, queue: str, names: list[str], window: int) -> Any:
        """The first `window` waiting jobs of each partner named, in claim order (priority, then
        id): id, partner, priority, status, attempts, attempt limit, run_after. One
        statement of one index range per partner (UNION ALL), portable where LATERAL is not. Built
        once per queue, partners and window (building it for 100 partners costs more than running it)."""
        key = (queue, tuple(names), window)
        if key not in self._waiting:
            if len(self._waiting) >= 64:
                self._waiting.clear()
            self._waiting[key] = self._build_waiting(queue, names, window)
        return self._waiting[key]

    def _build_waiting(self, queue: str, names: list[str], window: int) -> Any:
        parts = [
            select(*self._waiting_columns())
            .where(jobs.c.queue == queue, jobs.c.partner == name, claimable(), not_held())
            .order_by(jobs.c.priority, jobs.c.id)
            .limit(window)
            .subquery()
            for name in names
        ]
        return union_all(*(select(*part.c) for part in parts))

    def held(self, queue: str) -> Any:
        """The queue's waiting jobs a consumer holds (a standing hold: the lease it waits behind
        is still a running job's), in the columns of `waiting`, with `behind_job`."""
        return select(*self._waiting_columns(), holds.c.behind_job).where(
            holds.c.job_id == jobs.c.id, standing(), jobs.c.queue == queue, claimable()
        )

    def job(self, job_id: int) -> Any:
        """The one waiting job, in the same columns as `waiting`."""
        return select(*self._waiting_columns()).where(jobs.c.id == job_id, claimable())

    @staticmethod
    def _waiting_columns() -> list[ColumnElement[Any]]:
        return [
            jobs.c.id,
            jobs.c.partner,
            jobs.c.priority,
            jobs.c.status,
            jobs.c.attempts,
            attempt_limit().label("max_attempts"),
            jobs.c.run_after,
            kind_of(),
        ]

    @staticmethod
    def waiting_count(queue: str, partner: str) -> Any:
        """How many jobs of the partner wait in the queue (one range of the claim index)."""
        return (
            select(func.count()).select_from(jobs).where(jobs.c.queue == queue, jobs.c.partner == partner, claimable())
        )

    @staticmethod
    def ahead_of(queue: str, partner: str, priority: int, job_id: int) -> Any:
        """How many of the partner's waiting jobs come before (priority, id) in claim order."""
        before = or_(jobs.c.priority < priority, and_(jobs.c.priority == priority, jobs.c.id < job_id))
        return (
            select(func.count())
            .select_from(jobs)
            .where(jobs.c.queue == queue, jobs.c.partner == partner, claimable(), before)
        )

    def stamp(self, queue: str, seen_within: float) -> Any:
        """(now, running, newest lease, newest partner change, live servers, holds, newest held job):
        with the queue's row, what a kept line (pqueue/line_cache.py) depends on besides the
        waiting jobs. Any claim or end of a run moves the running count or the newest lease; a
        weight, cap or new partner writes a partner event; a hold is a row of pq_holds (a handful
        at most). Each is one step down an index."""
        running = and_(jobs.c.status == Status.UNDER_PROCESS.value, jobs.c.queue == queue)
        return select(
            self.ctx.now,
            select(func.count()).select_from(jobs).where(running).scalar_subquery(),
            select(func.max(jobs.c.lease_id)).where(running).scalar_subquery(),
            select(func.max(partner_events.c.id)).scalar_subquery(),
            self.live_servers(queue, seen_within).scalar_subquery(),
            select(func.count()).select_from(holds).scalar_subquery(),
            select(func.max(holds.c.job_id)).scalar_subquery(),
        )

    def live_servers(self, queue: str, seen_within: float) -> Any:
        """How many consumers or relays serving the queue were seen within `seen_within` seconds."""
        return (
            select(func.count())
            .select_from(workers)
            .where(
                workers.c.queue == queue,
                workers.c.kind.in_(["consumer", "relay"]),
                workers.c.last_seen >= self.ctx.in_(-seen_within),
            )
        )

    def run_times(self, queue: str, limit: int) -> Any:
        """(partner, seconds) of the queue's latest `limit` successful runs, newest first: the
        seat time each held, from its last claim to its outcome."""
        held = self.ctx.dialect.seconds_between(jobs.c.finished_at, jobs.c.started_at)
        return (
            select(jobs.c.partner, held.label("seconds"), kind_of())
            .where(
                jobs.c.status == Status.PROCESSED.value,
                jobs.c.finished_at.is_not(None),
                jobs.c.queue == queue,
                jobs.c.started_at.is_not(None),
            )
            .order_by(jobs.c.finished_at.desc())
            .limit(limit)
        )

    # -- calibration ------------------------------------------------------------------------------

    def unpredicted(self, limit: int, within_seconds: float) -> Any:
        """The newest unprocessed jobs submitted within the last seconds with no prediction yet
        (down the (status, id) index, newest first: it stops at the first `limit`)."""
        recorded = select(predictions.c.job_id).where(predictions.c.job_id == jobs.c.id).exists()
        return (
            select(jobs)
            .where(
                jobs.c.status == Status.UNPROCESSED.value,
                jobs.c.created_at >= self.ctx.in_(-within_seconds),
                ~recorded,
            )
            .order_by(jobs.c.id.desc())
            .limit(limit)
        )

    def record(self, values: list[dict[str, Any]]) -> Any:
        """Store predictions; a job that has one keeps its first."""
        insert = self.ctx.dialect.insert(predictions).values(values)
        return insert.on_conflict_do_nothing(index_elements=["job_id"])

    @staticmethod
    def calibration(limit: int) -> Any:
        """(queue, predicted, started, started by p90, started by latest) over the latest `limit`
        predictions with a p90; a job's start is its first claim (the event log), so a retry
        does not count as a late start."""
        first_start = (
            select(func.min(events.c.at))
            .where(events.c.job_id == predictions.c.job_id, events.c.to_status == Status.UNDER_PROCESS.value)
            .scalar_subquery()
        )
        recent = (
            select(
                predictions.c.queue, predictions.c.start_p90, predictions.c.start_latest, first_start.label("started")
            )
            .where(predictions.c.start_p90.is_not(None))
            .order_by(predictions.c.predicted_at.desc())
            .limit(limit)
            .subquery()
        )
        by_p90 = func.sum(case((recent.c.started <= recent.c.start_p90, 1), else_=0))
        by_latest = func.sum(case((recent.c.started <= recent.c.start_latest, 1), else_=0))
        return (
            select(recent.c.queue, func.count(), func.count(recent.c.started), by_p90, by_latest)
            .group_by(recent.c.queue)
            .order_by(recent.c.queue)
        )
