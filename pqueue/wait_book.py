"""The submitter's view of the store: a job's wait (pqueue/waitline.py) over one read of its queue
(pqueue/sql/waitline.py). Nothing here writes."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from pqueue import rows, waitline
from pqueue.errors import JobNotFound
from pqueue.models import Job
from pqueue.partner_book import DAY, HOUR
from pqueue.settings import Settings
from pqueue.sql import Statements
from pqueue.states import Status
from pqueue.transactions import Transactions
from pqueue.validation import check_call, check_page_limit
from pqueue.waitline import RunningRun, Snapshot, Wait, WaitingJob

# Partners' lines past a full window are taken as this long (their length matters only when the
# simulation runs past the window, and then only as "more of the same").
LONG_LINE = 10**9
RUN_TIMES_READ = 2_000  # the queue's latest successful runs each answer reads


class WaitBook:
    """Where a job is in line and why it waits (PersistentQ mixes it in)."""

    _tx: Transactions
    _sql: Statements
    settings: Settings

    def wait(self, job_id: int) -> Wait | None:
        check_call("wait", locals())
        with self._tx.read() as conn:
            row = conn.execute(self._sql.reads.job(job_id)).first()
            if row is None:
                raise JobNotFound(job_id)
            return self._wait_of(conn, rows.job_from(row))

    def waits(self, *, partner: str | None = None, queue: str | None = None, limit: int = 10) -> list[tuple[Job, Wait]]:
        check_call("waits", locals())
        check_page_limit(limit)
        with self._tx.read() as conn:
            line = conn.execute(self._sql.reads.next_waiting(queue, limit, partner)).all()
            snapshots: dict[str, Snapshot] = {}
            answers = [(job, self._wait_of(conn, job, snapshots)) for job in map(rows.job_from, line)]
        placed = [(job, wait) for job, wait in answers if wait is not None]
        return sorted(placed, key=lambda pair: _predicted_start(pair[1]))

    def _wait_of(self, conn: Connection, job: Job, snapshots: dict[str, Snapshot] | None = None) -> Wait | None:
        """The job's wait; `snapshots` keeps each queue's read for the next job of the same call."""
        sql = self._sql.waitline
        snapshots = {} if snapshots is None else snapshots
        if job.queue not in snapshots:
            snapshots[job.queue] = self._snapshot(conn, job.queue)
        snapshot = snapshots[job.queue]
        if job.status == Status.UNDER_PROCESS:
            run = next((run for run in snapshot.running if run.id == job.id), None)
            return None if run is None else waitline.forecast_running(snapshot, run, job.attempts, job.max_attempts)
        target_row = conn.execute(sql.job(job.id)).first()
        if target_row is None:
            return None  # finished: nothing to wait for
        target = _waiting(target_row, snapshot.now)
        own_ahead = None
        if all(entry.id != target.id for entry in snapshot.lines.get(target.partner, [])):
            ahead = sql.ahead_of(job.queue, target.partner, target.priority, target.id)
            own_ahead = int(conn.execute(ahead).scalar_one())
        wait = waitline.forecast(snapshot, target, own_ahead)
        if any(reason.code == "fair_share" for reason in wait.reasons):
            wait = _with_used_share(wait, self._used_share(conn, target.partner))
        return wait

    def _snapshot(self, conn: Connection, queue: str) -> Snapshot:
        sql = self._sql.waitline
        now = conn.execute(sql.clock()).scalar_one()
        stored = conn.execute(sql.queue(queue)).first()
        info = rows.queue_info_from(queue, stored, self.settings)
        shares = {
            row.name: waitline.PartnerShare(row.name, float(row.weight), row.max_running, float(row.tag or 0.0))
            for row in conn.execute(sql.partners(queue))
        }
        running = [
            RunningRun(
                row.id,
                row.partner,
                max(0.0, _seconds(now, row.started_at)),
                row.lease_expires_at is not None and row.lease_expires_at > now,
            )
            for row in conn.execute(sql.running(queue))
        ]
        window = _window(len(shares))
        lines: dict[str, list[WaitingJob]] = {}
        if shares:
            for row in conn.execute(sql.waiting(queue, list(shares), window)):
                lines.setdefault(row.partner, []).append(_waiting(row, now))
        for line in lines.values():
            line.sort(key=lambda entry: (entry.priority, entry.id))
        beyond = {name: LONG_LINE for name, line in lines.items() if len(line) >= window}
        run_times: dict[str, list[float]] = {}
        for row in conn.execute(sql.run_times(queue, RUN_TIMES_READ)):
            run_times.setdefault(row.partner, []).append(float(row.seconds))
        servers = int(conn.execute(sql.live_servers(queue, 2 * info.lease_seconds)).scalar_one())
        return Snapshot(
            now=now,
            queue=queue,
            seats=info.seats,
            paused=info.paused,
            paused_at=getattr(stored, "paused_at", None),
            paused_by=getattr(stored, "paused_by", None),
            vtime=float(getattr(stored, "vtime", 0.0) or 0.0),
            job_timeout=info.job_timeout,
            retry_backoff=info.retry_backoff_seconds,
            max_attempts=info.max_attempts,
            partners=shares,
            running=running,
            lines=lines,
            beyond=beyond,
            servers=servers,
            run_times=run_times,
        )

    def _used_share(self, conn: Connection, partner: str) -> float:
        """The partner's share of every partner's seat time in the last day."""
        used = {name: max(day or 0.0, 0.0) for name, _, day in conn.execute(self._sql.partners.seat_seconds(HOUR, DAY))}
        total = sum(used.values())
        return used.get(partner, 0.0) / total if total else 0.0


def _window(partners: int) -> int:
    """How many waiting jobs of each partner to read: enough for the simulation's budget."""
    steps = min(waitline.MAX_STEPS, waitline.LOOK_BUDGET // max(1, partners))
    return max(20, min(waitline.MAX_STEPS, 2 * steps // max(1, partners)))


def _waiting(row: Any, now: datetime) -> WaitingJob:
    return WaitingJob(
        row.id,
        row.partner,
        int(row.priority),
        Status(row.status),
        int(row.attempts),
        int(row.max_attempts),
        _seconds(row.run_after, now),
        row.run_after,
    )


def _seconds(later: datetime | None, earlier: datetime) -> float:
    return 0.0 if later is None else (later - earlier).total_seconds()


def _with_used_share(wait: Wait, share: float) -> Wait:
    reasons = [
        replace(reason, details={**reason.details, "used_share": round(share, 3)})
        if reason.code == "fair_share"
        else reason
        for reason in wait.reasons
    ]
    return replace(wait, reasons=reasons)


def _predicted_start(wait: Wait) -> tuple[int, float]:
    """Jobs sorted by predicted position (the simulation's order), then by start."""
    position = wait.position.total if wait.position else -1
    start = wait.eta_start.p50.timestamp() if wait.eta_start and wait.eta_start.p50 else 0.0
    return position, start
