"""What operators, the dashboard and the programs read: jobs and their filters, timelines, the
numbers of `pq stats`, queues, the worker registry, the clock. Nothing here writes."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Text as SQLText
from sqlalchemy import case, cast, func, or_, select, text
from sqlalchemy.sql.elements import ColumnElement

from pqueue.schema import deliveries, events, holds, jobs, queues, workers
from pqueue.sql.claim import claimable, standing
from pqueue.sql.context import Context
from pqueue.states import CLAIMABLE, Status

# The statuses throughput counts: the outcomes of attempts.
OUTCOMES = (Status.PROCESSED.value, Status.CRASHED.value, Status.MANUAL_INTERVENTION.value)


class Reads:
    """The read-only statements, for one context."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    @staticmethod
    def job(job_id: int) -> Any:
        return select(jobs).where(jobs.c.id == job_id)

    @staticmethod
    def job_id(job_id: int) -> Any:
        """The job's id when there is such a job."""
        return select(jobs.c.id).where(jobs.c.id == job_id)

    def filters(
        self,
        statuses: list[Status] | None,
        queue: str | None,
        since_seconds: float | None,
        search: str | None,
        partner: str | None = None,
    ) -> list[ColumnElement[bool]]:
        """The conditions of a job listing: in these statuses, in the queue, created within
        since_seconds, `search` in the payload's text (or as the job's id), of the partner."""
        conditions: list[ColumnElement[bool]] = [jobs.c.partner == partner] if partner else []
        if statuses:
            conditions.append(jobs.c.status.in_([s.value for s in statuses]))
        if queue:
            conditions.append(jobs.c.queue == queue)
        if since_seconds is not None:
            conditions.append(jobs.c.created_at >= self.ctx.in_(-since_seconds))
        if search:
            text_match = func.lower(cast(jobs.c.payload, SQLText)).contains(search.lower(), autoescape=True)
            # Digits also match the id, when they fit in an id column (a longer number would not
            # bind on SQLite, and no job has such an id).
            as_id = search.isascii() and search.isdigit() and int(search) < 2**63
            conditions.append(or_(text_match, jobs.c.id == int(search)) if as_id else text_match)
        return conditions

    @staticmethod
    def page(conditions: list[ColumnElement[bool]], after: int | None, oldest_first: bool, limit: int) -> Any:
        """Up to `limit` jobs past the cursor `after` (an id), newest first unless oldest_first."""
        if after is not None:
            conditions = [*conditions, jobs.c.id > after if oldest_first else jobs.c.id < after]
        order = jobs.c.id.asc() if oldest_first else jobs.c.id.desc()
        return select(jobs).where(*conditions).order_by(order).limit(limit)

    @staticmethod
    def count(conditions: list[ColumnElement[bool]]) -> Any:
        return select(func.count()).select_from(jobs).where(*conditions)

    def next_waiting(self, queue: str | None, limit: int, partner: str | None = None) -> Any:
        """Waiting jobs (of the partner) in the order they will be claimed among its own: due ones
        first, delayed ones after, by when they come due."""
        conditions: list[ColumnElement[bool]] = [claimable(), *([jobs.c.partner == partner] if partner else [])]
        if queue:
            conditions.append(jobs.c.queue == queue)
        not_due = case((jobs.c.run_after > self.ctx.now, 1), else_=0)
        return select(jobs).where(*conditions).order_by(not_due, jobs.c.priority, jobs.c.id).limit(limit)

    @staticmethod
    def events(job_id: int) -> Any:
        """The job's timeline, oldest first."""
        return select(events).where(events.c.job_id == job_id).order_by(events.c.id)

    @staticmethod
    def counts(partner: str | None = None) -> Any:
        """(queue, status, jobs, of those an operator failed) for every pair that has jobs (of the
        partner); a fail or a cancel sets operator_reason (stats counts it among manual_intervention jobs)."""
        counted = (jobs.c.queue, jobs.c.status, func.count(), func.count(jobs.c.operator_reason))
        chosen = select(*counted).group_by(jobs.c.queue, jobs.c.status)
        return chosen if partner is None else chosen.where(jobs.c.partner == partner)

    def oldest_waiting(self, partner: str | None = None) -> Any:
        """Seconds since the oldest waiting job (of the partner) was created."""
        oldest = select(self.ctx.dialect.seconds_between(self.ctx.now, func.min(jobs.c.created_at))).where(claimable())
        return oldest if partner is None else oldest.where(jobs.c.partner == partner)

    def running(self, partner: str | None = None) -> Any:
        """Jobs under_process with their elapsed and remaining seconds (rows.running_from)."""
        now, seconds_between = self.ctx.now, self.ctx.dialect.seconds_between
        columns = [
            jobs.c.id,
            jobs.c.queue,
            jobs.c.worker_id,
            jobs.c.started_at,
            jobs.c.lease_expires_at,
            jobs.c.attempts,
            seconds_between(now, jobs.c.started_at).label("elapsed"),
            seconds_between(jobs.c.lease_expires_at, now).label("remaining"),
        ]
        running = select(*columns).where(jobs.c.status == Status.UNDER_PROCESS.value).order_by(jobs.c.id)
        return running if partner is None else running.where(jobs.c.partner == partner)

    @staticmethod
    def holds(job_ids: list[int]) -> Any:
        """The standing holds (pqueue/sql/claim.py `standing`) of those of these jobs that still
        wait: a hold whose lease ended, or on a job an operator ended meanwhile, is no hold. At
        most one row per id (the LIMIT says so to readers that bound what a screen loads)."""
        held = holds.c.job_id.in_(job_ids)
        waiting = select(jobs.c.id).where(jobs.c.id == holds.c.job_id, claimable()).exists()
        return select(holds).where(held, standing(), waiting).order_by(holds.c.job_id).limit(len(job_ids))

    @staticmethod
    def held_counts(partner: str | None = None) -> Any:
        """(queue, waiting jobs a consumer holds) for every queue that has such jobs (of the partner)."""
        counted = select(jobs.c.queue, func.count()).where(holds.c.job_id == jobs.c.id, standing(), claimable())
        chosen = counted if partner is None else counted.where(jobs.c.partner == partner)
        return chosen.group_by(jobs.c.queue)

    @staticmethod
    def delivery_counts(partner: str | None = None) -> Any:
        """(delivery status, deliveries) (of the partner's jobs)."""
        counted = select(deliveries.c.status, func.count()).group_by(deliveries.c.status)
        if partner is None:
            return counted
        return counted.join(jobs, jobs.c.id == deliveries.c.job_id).where(jobs.c.partner == partner)

    def throughput(self, window_seconds: float, bucket_seconds: int) -> Any:
        """(bucket start, status, jobs) of moves to an outcome within the window; an event that
        only records a request (same status before and after) is not a move."""
        bucket = self.ctx.dialect.bucket(events.c.at, bucket_seconds).label("bucket")
        return (
            select(bucket, events.c.to_status, func.count())
            .where(events.c.to_status.in_(OUTCOMES), events.c.at >= self.ctx.in_(-window_seconds))
            .where(or_(events.c.from_status.is_(None), events.c.from_status != events.c.to_status))
            .group_by(bucket, events.c.to_status)
            .order_by(bucket)
        )

    def waiting_changes(self, window_seconds: float, bucket_seconds: int) -> Any:
        """(bucket start, net change of the waiting count) of moves within the window: +1 for a
        move into a claimable status, -1 for one out of it. Only processed is never reached from
        a claimable status, so the other statuses' part of ix_pq_events_to_at is all it reads."""
        bucket = self.ctx.dialect.bucket(events.c.at, bucket_seconds).label("bucket")
        waiting = [s.value for s in CLAIMABLE]
        change = case((events.c.to_status.in_(waiting), 1), else_=0) - case(
            (events.c.from_status.in_(waiting), 1), else_=0
        )
        touched = [s.value for s in Status if s != Status.PROCESSED]
        return (
            select(bucket, func.sum(change))
            .where(events.c.to_status.in_(touched), events.c.at >= self.ctx.in_(-window_seconds))
            .group_by(bucket)
            .order_by(bucket)
        )

    def run_durations(self, window_seconds: float, limit: int) -> Any:
        """Seconds from start to finish of jobs processed within the window, newest first."""
        duration = self.ctx.dialect.seconds_between(jobs.c.finished_at, jobs.c.started_at)
        return (
            select(duration)
            .where(
                jobs.c.status == Status.PROCESSED.value,
                jobs.c.finished_at >= self.ctx.in_(-window_seconds),
                jobs.c.started_at.is_not(None),
            )
            .order_by(jobs.c.finished_at.desc())
            .limit(limit)
        )

    def now(self) -> Any:
        return select(self.ctx.now)

    def ping(self) -> Any:
        """Why the database takes no writes now (NULL while it does)."""
        return select(self.ctx.dialect.read_only_reason())

    def replication(self) -> Any:
        """The session's commit level, synchronous_standby_names, the standbys streaming from this
        server, those a commit waits for, and those whose state this role may not see."""
        if self.ctx.dialect.name == "sqlite":
            return text(
                "SELECT CASE synchronous WHEN 2 THEN 'FULL' WHEN 3 THEN 'EXTRA' ELSE 'NORMAL' END, '', 0, 0, 0"
                " FROM pragma_synchronous"
            )
        return text(
            "SELECT current_setting('synchronous_commit'), current_setting('synchronous_standby_names'),"
            " count(*), count(*) FILTER (WHERE sync_state IN ('sync', 'quorum')),"
            " count(*) FILTER (WHERE sync_state IS NULL) FROM pg_stat_replication"
        )

    @staticmethod
    def queue_settings() -> Any:
        """Every queue's stored seats and pause flag."""
        return select(queues)

    @staticmethod
    def queue_setting(queue: str) -> Any:
        return select(queues).where(queues.c.name == queue)

    @staticmethod
    def relay_queues() -> Any:
        """(name, paused) of every stored queue a registered relay serves."""
        served = select(workers.c.queue).where(workers.c.kind == "relay")
        return select(queues.c.name, queues.c.paused).where(queues.c.name.in_(served)).order_by(queues.c.name)

    @staticmethod
    def queue_names() -> Any:
        """Every queue that has jobs."""
        return select(jobs.c.queue).distinct()

    def workers(self) -> Any:
        """The registry with each worker's last-seen age and current job (rows.worker_from)."""
        current_job = (
            select(func.min(jobs.c.id))
            .where(jobs.c.worker_id == workers.c.id, jobs.c.status == Status.UNDER_PROCESS.value)
            .scalar_subquery()
        )
        seen = self.ctx.dialect.seconds_between(self.ctx.now, workers.c.last_seen)
        return select(workers, seen.label("seen"), current_job.label("job")).order_by(workers.c.id)
