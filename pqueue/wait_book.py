"""The submitter's view of the store: a job's wait (pqueue/waitline.py) over one read of its queue
(pqueue/sql/waitline.py), and the predictions recorded for calibration."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from pqueue import rows, waitline
from pqueue.errors import JobNotFound
from pqueue.models import Calibration, Job
from pqueue.partner_book import DAY, HOUR
from pqueue.settings import Settings
from pqueue.sql import Statements
from pqueue.states import CLAIMABLE, Status
from pqueue.transactions import Transactions
from pqueue.validation import checked
from pqueue.waitline import RunningRun, Snapshot, Wait, WaitingJob

# Partners' lines past a full window are taken as this long (their length matters only when the
# simulation runs past the window, and then only as "more of the same").
LONG_LINE = 10**9
RUN_TIMES_READ = 2_000  # the queue's latest successful runs each answer reads
RECORD_WITHIN_SECONDS = 60.0  # a prediction is recorded only for a job submitted this recently
CALIBRATION_WINDOW = 1_000  # the latest predictions calibration counts


class WaitBook:
    """Where a job is in line and why it waits (PersistentQ mixes it in)."""

    _tx: Transactions
    _sql: Statements
    settings: Settings

    @checked
    def wait(self, job_id: int) -> Wait | None:
        with self._tx.read() as conn:
            row = conn.execute(self._sql.reads.job(job_id)).first()
            if row is None:
                raise JobNotFound(job_id)
            job = rows.job_from(row)
            snapshots: dict[str, Snapshot] = {}
            if job.status == Status.UNDER_PROCESS:
                return self._running_wait(conn, job, snapshots)
            target = conn.execute(self._sql.waitline.job(job.id)).first()
            if target is None:
                return None  # finished: nothing to wait for
            snapshot = self._snapshot_of(conn, job.queue, snapshots)
            waiting = _waiting(target, snapshot.now)
            own_ahead = None
            if all(entry.id != waiting.id for entry in snapshot.lines.get(waiting.partner, [])):
                ahead = self._sql.waitline.ahead_of(job.queue, waiting.partner, waiting.priority, waiting.id)
                own_ahead = int(conn.execute(ahead).scalar_one())
            return self._with_used_share(conn, waitline.forecast(snapshot, waiting, own_ahead), waiting.partner)

    @checked
    def waits(self, *, partner: str | None = None, queue: str | None = None, limit: int = 10) -> list[tuple[Job, Wait]]:
        with self._tx.read() as conn:
            line = [rows.job_from(row) for row in conn.execute(self._sql.reads.next_waiting(queue, limit, partner))]
            found = self._waits_of(conn, line)
        placed = [(job, found[job.id]) for job in line if job.id in found]
        return sorted(placed, key=lambda pair: _predicted_order(pair[1]))

    @checked
    def record_predictions(self, *, limit: int = 20) -> int:
        sql = self._sql.waitline
        with self._tx.read() as conn:  # the forecasts are computed outside any write transaction
            found = [rows.job_from(row) for row in conn.execute(sql.unpredicted(limit, RECORD_WITHIN_SECONDS))]
            predicted = self._waits_of(conn, found, used_share=False)
        recorded = [value for job in found if (value := _prediction(job, predicted.get(job.id))) is not None]
        if recorded:
            self._tx.write(lambda tx: tx.conn.execute(sql.record(recorded)))
        return len(recorded)

    def calibration(self) -> list[Calibration]:
        with self._tx.read() as conn:
            found = conn.execute(self._sql.waitline.calibration(CALIBRATION_WINDOW)).all()
        return [
            Calibration(
                queue,
                int(predicted),
                int(started),
                float(by_p90 or 0) / started if started else 0.0,
                float(by_latest or 0) / started if started else 0.0,
            )
            for queue, predicted, started, by_p90, by_latest in found
        ]

    # -- reading and simulating ---------------------------------------------------------------

    def _waits_of(self, conn: Connection, jobs: list[Job], *, used_share: bool = True) -> dict[int, Wait]:
        """The waits of jobs of any queues: one read and one simulation per queue."""
        snapshots: dict[str, Snapshot] = {}
        waits: dict[int, Wait] = {}
        by_queue: dict[str, list[Job]] = defaultdict(list)
        for job in jobs:
            if job.status == Status.UNDER_PROCESS:
                running = self._running_wait(conn, job, snapshots)
                if running is not None:
                    waits[job.id] = running
            elif job.status in CLAIMABLE:
                by_queue[job.queue].append(job)
        for queue, waiting_jobs in by_queue.items():
            snapshot = self._snapshot_of(conn, queue, snapshots)
            targets = {job.id: _waiting_from_job(job, snapshot) for job in waiting_jobs}
            for job_id, wait in waitline.forecast_many(snapshot, list(targets.values()), {}).items():
                partner = targets[job_id].partner
                waits[job_id] = self._with_used_share(conn, wait, partner) if used_share else wait
        return waits

    def _running_wait(self, conn: Connection, job: Job, snapshots: dict[str, Snapshot]) -> Wait | None:
        snapshot = self._snapshot_of(conn, job.queue, snapshots)
        run = next((run for run in snapshot.running if run.id == job.id), None)
        return None if run is None else waitline.forecast_running(snapshot, run, job.attempts, job.max_attempts)

    def _snapshot_of(self, conn: Connection, queue: str, snapshots: dict[str, Snapshot]) -> Snapshot:
        if queue not in snapshots:
            snapshots[queue] = self._snapshot(conn, queue)
        return snapshots[queue]

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
                None if row.kind is None else str(row.kind),
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
        kind_run_times: dict[tuple[str, str], list[float]] = {}
        for row in conn.execute(sql.run_times(queue, RUN_TIMES_READ)):
            run_times.setdefault(row.partner, []).append(float(row.seconds))
            if row.kind is not None:
                kind_run_times.setdefault((row.partner, str(row.kind)), []).append(float(row.seconds))
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
            kind_run_times=kind_run_times,
        )

    def _with_used_share(self, conn: Connection, wait: Wait, partner: str) -> Wait:
        """A fair_share reason gets the partner's share of the last day's seat time (read only then)."""
        if not any(reason.code == "fair_share" for reason in wait.reasons):
            return wait
        used = {name: max(day or 0.0, 0.0) for name, _, day in conn.execute(self._sql.partners.seat_seconds(HOUR, DAY))}
        total = sum(used.values())
        return _with_used_share(wait, used.get(partner, 0.0) / total if total else 0.0)


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
        None if row.kind is None else str(row.kind),
    )


def _waiting_from_job(job: Job, snapshot: Snapshot) -> WaitingJob:
    """The job as its partner's line in the snapshot has it (with the attempt limit the claim
    would apply), else from the job itself."""
    for entry in snapshot.lines.get(job.partner, []):
        if entry.id == job.id:
            return entry
    due_in = _seconds(job.run_after, snapshot.now)
    kind = job.payload.get("kind") if isinstance(job.payload, dict) else None
    return WaitingJob(
        job.id,
        job.partner,
        job.priority,
        job.status,
        job.attempts,
        job.max_attempts,
        due_in,
        job.run_after,
        None if kind is None else str(kind),
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


def _predicted_order(wait: Wait) -> tuple[int, float]:
    """Jobs sorted by predicted position (the simulation's order), then by start."""
    position = wait.position.total if wait.position else -1
    start = wait.eta_start.p50.timestamp() if wait.eta_start and wait.eta_start.p50 else 0.0
    return position, start


def _prediction(job: Job, wait: Wait | None) -> dict[str, Any] | None:
    """The row recording what was predicted for the job's start (None: nothing to record)."""
    if wait is None or wait.eta_start is None:
        return None
    start = wait.eta_start
    return {
        "job_id": job.id,
        "queue": job.queue,
        "predicted_at": wait.computed_at,
        "start_p50": start.p50,
        "start_p90": start.p90,
        "start_latest": start.latest,
    }
