"""The submitter's view of the store: a job's wait (pqueue/waitline.py) over one read of its queue
(pqueue/sql/waitline.py), and the predictions recorded for calibration."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from functools import partial
from typing import Any

from sqlalchemy import Connection

from pqueue import predicted_line, rows, waitline
from pqueue.errors import JobNotFound
from pqueue.line_cache import LineCache
from pqueue.models import Calibration, Job
from pqueue.partner_book import DAY, HOUR
from pqueue.predicted_line import Line
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
    _lines: LineCache

    @checked
    def wait(self, job_id: int) -> Wait | None:
        with self._tx.read() as conn:
            row = conn.execute(self._sql.reads.job(job_id)).first()
            if row is None:
                raise JobNotFound(job_id)
            job = rows.job_from(row)
            if job.status == Status.UNDER_PROCESS:
                return self._running_wait(conn, job)
            target = conn.execute(self._sql.waitline.job(job.id)).first()
            if target is None:
                return None  # finished: nothing to wait for
            line = self._line(conn, job.queue)
            waiting = _waiting(target, line.snapshot.now)
            if not line.knows(waiting):  # it ran, or changed, since the line was computed
                line = self._line(conn, job.queue, usable=lambda kept: kept.knows(_waiting(target, kept.snapshot.now)))
                waiting = _waiting(target, line.snapshot.now)
            snapshot, own_ahead = line.snapshot, None
            if waiting.id not in line.entries:  # past its partner's line, or newer than the line
                own_ahead = line.own_ahead.get(waiting.id)
                if own_ahead is None:
                    ahead = self._sql.waitline.ahead_of(job.queue, waiting.partner, waiting.priority, waiting.id)
                    own_ahead = line.own_ahead[waiting.id] = int(conn.execute(ahead).scalar_one())
            due_now = (
                target.run_after is None or target.run_after <= conn.execute(self._sql.waitline.clock()).scalar_one()
            )
            found = line.wait(waiting, own_ahead, due_now)
            if found is None:
                found = waitline.forecast(predicted_line.extended(snapshot, [waiting]), waiting, own_ahead)
            return self._with_used_share(conn, line, found, waiting.partner)

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
        """The waits of jobs of any queues, from each queue's line; when the line cannot place one
        of them (newer than it), all of the queue's from one simulation of the line extended with
        them, so that a list never places two jobs at one position."""
        waits: dict[int, Wait] = {}
        by_queue: dict[str, list[Job]] = defaultdict(list)
        for job in jobs:
            if job.status == Status.UNDER_PROCESS:
                running = self._running_wait(conn, job)
                if running is not None:
                    waits[job.id] = running
            elif job.status in CLAIMABLE:
                by_queue[job.queue].append(job)
        for queue, waiting_jobs in by_queue.items():
            line = self._line(conn, queue)
            if not _knows_all(line, waiting_jobs):  # one of them ran, or changed, since
                line = self._line(conn, queue, usable=partial(_knows_all, jobs=waiting_jobs))
            targets = [_waiting_from_job(job, line.snapshot) for job in waiting_jobs]
            found = {target.id: wait for target in targets if (wait := line.wait(target, None)) is not None}
            if len(found) < len(targets):  # one simulation of the line with the newer jobs, for the whole list
                extended = predicted_line.extended(line.snapshot, [t for t in targets if t.id not in found])
                found = waitline.forecast_many(extended, targets, {})
            for target in targets:
                wait = found[target.id]
                waits[target.id] = self._with_used_share(conn, line, wait, target.partner) if used_share else wait
        return waits

    def _running_wait(self, conn: Connection, job: Job) -> Wait | None:
        line = self._line(conn, job.queue)
        run = line.running(job.id)
        if run is None:  # claimed since the line was computed
            line = self._line(conn, job.queue, usable=lambda kept: kept.running(job.id) is not None)
            run = line.running(job.id)
        return None if run is None else line.running_wait(run, job.attempts, job.max_attempts)

    def _line(self, conn: Connection, queue: str, usable: Callable[[Line], bool] = lambda line: True) -> Line:
        """The queue's kept line when it still holds (pqueue/line_cache.py), else a new one."""
        stored = conn.execute(self._sql.waitline.queue(queue)).first()
        info = rows.queue_info_from(queue, stored, self.settings)
        now, *moved = conn.execute(self._sql.waitline.stamp(queue, 2 * info.lease_seconds)).one()
        stamp = (None if stored is None else tuple(stored), *moved)
        return self._lines.line(
            queue, now, stamp, lambda: predicted_line.line_of(self._snapshot(conn, queue, now)), usable
        )

    def _snapshot(self, conn: Connection, queue: str, now: datetime) -> Snapshot:
        sql = self._sql.waitline
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
        held = {int(row.behind_job): _waiting(row, now) for row in conn.execute(sql.held(queue))}
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
            held=held,
        )

    def _with_used_share(self, conn: Connection, line: Line, wait: Wait, partner: str) -> Wait:
        """A fair_share reason gets the partner's share of the last day's seat time (read only
        when a wait has that reason, and kept a minute: pqueue/line_cache.py)."""
        if not any(reason.code == "fair_share" for reason in wait.reasons):
            return wait

        def read() -> dict[str, float]:
            seat_seconds = conn.execute(self._sql.partners.seat_seconds(HOUR, DAY))
            seconds = {name: max(day or 0.0, 0.0) for name, _, day in seat_seconds}
            total = sum(seconds.values())
            return {name: value / total for name, value in seconds.items()} if total else {}

        used = self._lines.used_shares(line.snapshot.now, read)
        return _with_used_share(wait, used.get(partner, 0.0))


def _knows_all(line: Line, jobs: list[Job]) -> bool:
    return all(line.knows(_waiting_from_job(job, line.snapshot)) for job in jobs)


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
    """The job as it is now, with the attempt limit the claim would apply as the snapshot read it
    (else its own): equal to its entry in the snapshot unless it changed since."""
    entry = next((entry for entry in snapshot.lines.get(job.partner, []) if entry.id == job.id), None)
    kind = job.payload.get("kind") if isinstance(job.payload, dict) else None
    return WaitingJob(
        job.id,
        job.partner,
        job.priority,
        job.status,
        job.attempts,
        job.max_attempts if entry is None else entry.max_attempts,
        _seconds(job.run_after, snapshot.now),
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
