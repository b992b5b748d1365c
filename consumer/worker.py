"""The consumer: claim one job, run it in a job process, record the outcome; between jobs, wait.

`run_once()` is one claim-run-record step (testable without threads or signals); `run()` is the
loop around it that waits for work, rescues expired leases, purges old jobs and stops on request.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from enum import StrEnum
from multiprocessing.connection import wait

from consumer.lease import LeaseKeeper
from consumer.logs import event
from consumer.pool import AlgorithmProcesses
from consumer.running import Ending, JobRun, Outcome
from consumer.stopping import Shutdown, Waker
from pqueue import FINAL, DatabaseBusy, DatabaseError, Job, LeaseLost, PersistentQ, PQError, Settings, Status

log = logging.getLogger("consumer")

IDLE_WAIT = 1.0  # longest wait for work in one go, so a stop request is seen within a second
SPARE_WAIT = 30.0  # longest wait for a forked job process to become ready
PURGE_EVERY = 3600.0  # seconds between retention purges (done only while idle)
PURGED_STATUSES = (Status.PROCESSED, Status.CANCELLED)  # manual_intervention waits for a person
DATABASE_RETRY_MIN = 0.5  # first pause before checking a database that stopped answering
DATABASE_RETRY_MAX = 10.0  # longest pause between checks while the database does not answer


class Step(StrEnum):
    """What one run_once did."""

    RAN = "ran"  # a job was claimed and run
    IDLE = "idle"  # nothing claimable (empty, paused, or every seat taken)
    UNAVAILABLE = "unavailable"  # the database did not answer, or no job process could be readied
    STOPPING = "stopping"  # a stop was requested; nothing claimed


class Consumer:
    """Runs the queue's jobs one at a time in job processes forked by the warm helper."""

    def __init__(
        self,
        store: PersistentQ,
        settings: Settings,
        worker_id: str,
        processes: AlgorithmProcesses,
        *,
        queue: str | None = None,
        waker: Waker | None = None,
        shutdown: Shutdown | None = None,
        on_final: Callable[[], None] = lambda: None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.worker_id = worker_id
        self.processes = processes
        self.queue = queue or settings.queue
        self.waker = waker or Waker()
        self.shutdown = shutdown or Shutdown(self.waker)
        self.on_final = on_final  # told when an outcome was recorded (callback delivery wakes up)
        self.database_ok = True
        self.jobs_run = 0
        self._next_rescue = 0.0
        self._next_purge = 0.0
        self._next_touch = 0.0
        self._database_retry = DATABASE_RETRY_MIN

    # -- one step ------------------------------------------------------------------------------

    def run_once(self) -> Step:
        """Claim one job and run it to its recorded end; or say why nothing ran."""
        if self.shutdown.requested:
            return Step.STOPPING
        if not self.database_ok and not self._database_answers():
            return Step.UNAVAILABLE
        self._rescue_if_due()
        if not self.processes.ensure_spare(SPARE_WAIT):
            event(log, "no_job_process", level=logging.WARNING, note="claiming paused until one is ready")
            return Step.UNAVAILABLE
        claim_started = time.monotonic()
        try:
            job = self.store.get_item(self.worker_id, queue=self.queue, lease_seconds=self.settings.lease_seconds)
        except DatabaseError as exc:
            self._database_lost(exc)
            return Step.UNAVAILABLE
        self._database_retry = DATABASE_RETRY_MIN  # a claim went through: the database is really back
        if job is None:
            return Step.IDLE
        if self.shutdown.requested:  # the signal came while claiming: give the job straight back
            self._release(job)
            return Step.STOPPING
        self._run(job, claim_started)
        self.jobs_run += 1
        return Step.RAN

    def _run(self, job: Job, claim_started: float) -> None:
        event(log, "claimed", job.id, attempt=f"{job.attempts}/{job.max_attempts}", lease=job.lease_id, queue=job.queue)
        process = self.processes.take_spare()
        lease = LeaseKeeper(
            self.store, job, self.settings.lease_seconds, claim_started, self.waker.wake, self._touch_quietly
        )
        run = JobRun(job, process, self.processes, self.store, self.settings, self.shutdown, self.waker, lease)
        outcome = run.supervise()
        self._record(job, outcome, time.monotonic() - run.started)

    # -- recording -----------------------------------------------------------------------------

    def _record(self, job: Job, outcome: Outcome, seconds: float) -> None:
        ending = outcome.ending
        if ending == Ending.SUCCEEDED:
            self._finish(job, Status.PROCESSED, outcome, seconds, result=outcome.result)
        elif ending == Ending.FAILED:
            self._finish(job, Status.CRASHED, outcome, seconds, error=outcome.error)
        elif ending == Ending.STOPPED:
            assert outcome.target is not None
            self._finish(job, outcome.target, outcome, seconds, error=outcome.error)
        elif ending == Ending.RELEASED:
            self._release(job)
        elif ending == Ending.RENEWAL_FAILED:
            # The algorithm is dead; record the failure if the database answers, else rescue will.
            self._finish(job, Status.CRASHED, outcome, seconds, error=outcome.error, patient=False)
            self.database_ok = False
        else:  # LEASE_LOST: the job is someone else's now; ABANDONED: rescue will take it
            event(log, "not_recorded", job.id, reason=ending.value)

    def _finish(
        self,
        job: Job,
        status: Status,
        outcome: Outcome,
        seconds: float,
        *,
        result: object = None,
        error: str | None = None,
        patient: bool = True,
    ) -> None:
        """update_status, retried while the database is briefly away and the lease still holds."""
        while True:
            try:
                done = self.store.update_status(job.id, status, lease_id=job.lease_id, result=result, error=error)
            except LeaseLost as exc:
                event(log, "outcome_discarded", job.id, level=logging.WARNING, reason=str(exc))
                return
            except DatabaseBusy as exc:
                if patient and time.monotonic() + DATABASE_RETRY_MIN < outcome.lease_valid_until:
                    event(log, "record_retry", job.id, level=logging.WARNING, error=str(exc))
                    time.sleep(DATABASE_RETRY_MIN)
                    continue
                self._database_lost(exc)
                return
            except PQError as exc:
                if status != Status.PROCESSED:
                    self._database_lost(exc)
                    return
                # The result itself was refused (the database would not store it): the attempt failed.
                status, result, error = Status.CRASHED, None, f"ResultNotStored: {exc}"
                continue
            self._log_finished(done, seconds)
            if done.status in FINAL:
                self.on_final()
            return

    def _log_finished(self, done: Job, seconds: float) -> None:
        fields: dict[str, object] = {"status": done.status.value, "seconds": round(seconds, 3)}
        level = logging.INFO
        if done.status != Status.PROCESSED:
            lines = (done.error or "").strip().splitlines()
            fields["error"] = lines[-1] if lines else None
            level = logging.WARNING
        event(log, "finished", done.id, level=level, **fields)

    def _release(self, job: Job) -> None:
        try:
            self.store.release(job.id, job.lease_id, reason=f"consumer {self.worker_id} shutting down")
        except LeaseLost as exc:
            event(log, "release_refused", job.id, level=logging.WARNING, reason=str(exc))
        except PQError as exc:
            event(log, "release_failed", job.id, level=logging.ERROR, error=str(exc), note="rescue will retry it")
        else:
            event(log, "released", job.id, note="back to unprocessed, attempt not spent")

    # -- the loop ------------------------------------------------------------------------------

    def run(self, *, drain: bool = False, once: bool = False) -> None:
        """Work until asked to stop; with drain, until nothing is claimable; with once, one job."""
        while not self.shutdown.requested:
            step = self.run_once()
            if step == Step.RAN:
                if once:
                    return
                continue
            if step == Step.IDLE:
                if drain or once:
                    event(log, "drained", jobs=self.jobs_run)
                    return
                self._idle()
            elif step == Step.UNAVAILABLE:
                self._pause(self._database_retry)

    def _idle(self) -> None:
        """Between jobs: purge if due, say we are alive, and wait for work (not a fixed tick)."""
        self._purge_if_due()
        self._touch_quietly()
        now = time.monotonic()
        timeout = max(0.01, min(IDLE_WAIT, self._next_rescue - now))
        try:
            self.store.wait_for_work(timeout, queue=self.queue)
        except DatabaseError as exc:
            self._database_lost(exc)
            self._pause(self._database_retry)

    def _pause(self, seconds: float) -> None:
        """Sleep, but wake at once for a stop request."""
        wait([self.waker.fileno()], seconds)
        self.waker.drain()

    # -- housekeeping --------------------------------------------------------------------------

    def _rescue_if_due(self) -> None:
        now = time.monotonic()
        if now < self._next_rescue:
            return
        self._next_rescue = now + self.settings.lease_seconds / 2
        try:
            rescued = self.store.rescue_expired(actor=self.worker_id)
        except DatabaseError as exc:
            event(log, "rescue_failed", level=logging.WARNING, error=str(exc))
            return
        for job_id, status in rescued:
            event(log, "rescued", job_id, level=logging.WARNING, status=status.value, reason="lease expired")

    def _purge_if_due(self) -> None:
        now = time.monotonic()
        if self.settings.retention_days <= 0 or now < self._next_purge:
            return
        self._next_purge = now + PURGE_EVERY
        try:
            removed = self.store.purge(self.settings.retention_days * 86400, PURGED_STATUSES, batch_size=500)
        except PQError as exc:
            event(log, "purge_failed", level=logging.WARNING, error=str(exc))
            return
        if removed:
            event(log, "purged", count=removed, older_than_days=self.settings.retention_days)

    def _touch_quietly(self) -> None:
        """Refresh last_seen in the worker registry, at most every lease/3; failures only logged."""
        now = time.monotonic()
        if now < self._next_touch:
            return
        self._next_touch = now + min(10.0, self.settings.lease_seconds / 3)
        try:
            self.store.touch_worker(self.worker_id)
        except PQError as exc:
            event(log, "touch_failed", level=logging.WARNING, error=str(exc))

    def _database_lost(self, exc: Exception) -> None:
        """Stop claiming; check again after a pause that doubles while the database stays away."""
        if self.database_ok:
            event(log, "database_unavailable", level=logging.ERROR, error=str(exc), note="not claiming")
        else:
            self._database_retry = min(DATABASE_RETRY_MAX, self._database_retry * 2)
        self.database_ok = False

    def _database_answers(self) -> bool:
        try:
            self.store.ping()
        except PQError:
            self._database_retry = min(DATABASE_RETRY_MAX, self._database_retry * 2)
            return False
        event(log, "database_available")
        self.database_ok = True
        self._next_rescue = 0.0  # leases may have expired meanwhile: rescue before claiming
        return True
