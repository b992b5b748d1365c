"""The consumer: claim one job, run it in a job process, record the outcome; between jobs, wait.

`run_once()` is one claim-run-record step (testable without threads or signals); `run()` is the
loop around it that waits for work, rescues expired leases, purges old jobs and stops on request.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from enum import StrEnum
from functools import partial

from consumer.lease import LeaseKeeper
from consumer.logs import event
from consumer.pool import AlgorithmProcesses
from consumer.processes import wait_readable
from consumer.running import Ending, JobRun, Outcome
from consumer.stopping import Shutdown, Waker
from pqueue import FINAL, DatabaseBusy, DatabaseError, Job, LeaseLost, PersistentQ, PQError, Settings, Status

log = logging.getLogger("consumer")

IDLE_WAIT = 1.0  # longest wait for work in one go, so a stop request is seen within a second
SPARE_WAIT = 30.0  # longest wait for a forked job process to become ready
# Longest wait for the next job process before recording an outcome: with one ready, the outcome's
# transaction also claims the next job; without, the outcome is recorded alone.
SPARE_CHAIN_WAIT = 0.05
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
        self.on_final = on_final  # told when an outcome queued a callback (delivery wakes up)
        self.database_ok = True
        self.jobs_run = 0
        self._next_rescue = 0.0
        self._next_purge = 0.0
        self._next_touch = 0.0
        self._database_retry = DATABASE_RETRY_MIN
        self._held: tuple[Job, float] | None = None  # claimed with the last outcome, and when
        # Log lines and the delivery wake-up of that outcome: told once the held job has its payload.
        self._notes: list[Callable[[], None]] = []

    # -- one step ------------------------------------------------------------------------------

    def run_once(self, *, claim_next: bool = False) -> Step:
        """Claim one job and run it to its recorded end; or say why nothing ran.

        With claim_next, the transaction that records the outcome also claims the next job when
        a job process is ready for it; the next run_once runs that job without claiming again.
        """
        if self.shutdown.requested:
            self._release_held()
            return Step.STOPPING
        if self._held is not None:
            if self.processes.spare_ready(SPARE_CHAIN_WAIT):
                return self._run_held(claim_next)
            self._release_held()  # its job process died meanwhile: claim again once another is ready
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
        self._log_claimed(job)
        self._run(job, claim_started, claim_next)
        return Step.RAN

    def _run_held(self, claim_next: bool) -> Step:
        """Run the job claimed with the last outcome, on the job process that was ready for it."""
        assert self._held is not None
        job, claim_started = self._held
        self._held = None
        self._run(job, claim_started, claim_next)
        return Step.RAN

    def _run(self, job: Job, claim_started: float, claim_next: bool) -> None:
        process = self.processes.take_spare()
        lease = LeaseKeeper(
            self.store, job, self.settings.lease_seconds, claim_started, self.waker.wake, self._touch_quietly
        )
        run = JobRun(
            job, process, self.processes, self.store, self.settings, self.shutdown, self.waker, lease, self._tell_notes
        )
        outcome = run.supervise()
        self._tell_notes()  # (already told, unless the job process died before it had the payload)
        self.jobs_run += 1
        self._record(job, outcome, time.monotonic() - run.started, claim_next)

    def _release_held(self) -> None:
        """Give back a job claimed with the last outcome that will not run (a stop, no job process)."""
        self._tell_notes()
        if self._held is not None:
            job, _ = self._held
            self._held = None
            self._release(job)

    def _tell_notes(self) -> None:
        notes, self._notes = self._notes, []
        for note in notes:
            note()

    @staticmethod
    def _log_claimed(job: Job) -> None:
        event(log, "claimed", job.id, attempt=f"{job.attempts}/{job.max_attempts}", lease=job.lease_id, queue=job.queue)

    # -- recording -----------------------------------------------------------------------------

    def _record(self, job: Job, outcome: Outcome, seconds: float, claim_next: bool = False) -> None:
        ending = outcome.ending
        if ending in (Ending.SUCCEEDED, Ending.FAILED, Ending.STOPPED):
            status = {Ending.SUCCEEDED: Status.PROCESSED, Ending.FAILED: Status.CRASHED}.get(ending, outcome.target)
            assert status is not None
            if not (claim_next and self._finish_and_claim(job, status, outcome, seconds)):
                self._finish(job, status, outcome, seconds, result=outcome.result, error=outcome.error)
        elif ending == Ending.RELEASED:
            self._release(job, outcome.error)
        elif ending == Ending.RENEWAL_FAILED:
            # The algorithm is dead; record the failure if the database answers, else rescue will.
            self._finish(job, Status.CRASHED, outcome, seconds, error=outcome.error, patient=False)
            self.database_ok = False
        else:  # LEASE_LOST: the job is someone else's now; ABANDONED: rescue will take it
            event(log, "not_recorded", job.id, reason=ending.value)

    def _finish_and_claim(self, job: Job, status: Status, outcome: Outcome, seconds: float) -> bool:
        """Record the outcome and claim the next job in one transaction, when the next can start
        at once; False when it was not tried or failed (then nothing was recorded or claimed)."""
        if self.shutdown.requested or not self.database_ok or time.monotonic() >= self._next_rescue:
            return False  # (rescue is due: run_once does it before its own claim)
        if not self.processes.spare_ready(SPARE_CHAIN_WAIT):
            return False
        claim_started = time.monotonic()
        try:
            done, claimed = self.store.finish_and_claim(
                job.id,
                status,
                lease_id=job.lease_id,
                worker_id=self.worker_id,
                result=outcome.result,
                error=outcome.error,
                queue=self.queue,
                lease_seconds=self.settings.lease_seconds,
            )
        except PQError:
            return False  # update_status alone, with its retries and its answers to each error
        self._database_retry = DATABASE_RETRY_MIN
        if claimed is None:
            self._finished(done, seconds)
            return True
        self._held = (claimed, claim_started)
        self.processes.spares_wanted = 2  # jobs come back to back: fork ahead of them
        # The seat is taken again: the next job's payload goes first; the log lines and the wake-up
        # of the delivery thread (which would compete for the interpreter lock) come after it.
        self._notes = [partial(self._finished, done, seconds), partial(self._log_claimed, claimed)]
        return True

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
            self._finished(done, seconds)
            return

    def _finished(self, done: Job, seconds: float) -> None:
        self._log_finished(done, seconds)
        if done.status in FINAL and done.callback_url:  # its callback was queued: deliver it now
            self.on_final()

    def _log_finished(self, done: Job, seconds: float) -> None:
        fields: dict[str, object] = {"status": done.status.value, "seconds": round(seconds, 3)}
        level = logging.INFO
        if done.status != Status.PROCESSED:
            lines = (done.error or "").strip().splitlines()
            fields["error"] = lines[-1] if lines else None
            level = logging.WARNING
        event(log, "finished", done.id, level=level, **fields)

    def _release(self, job: Job, why: str | None = None) -> None:
        try:
            reason = why or f"consumer {self.worker_id} shutting down"
            self.store.release(job.id, job.lease_id, reason=reason)
        except LeaseLost as exc:
            event(log, "release_refused", job.id, level=logging.WARNING, reason=str(exc))
        except PQError as exc:
            event(log, "release_failed", job.id, level=logging.ERROR, error=str(exc), note="rescue will retry it")
        else:
            event(log, "released", job.id, note="back to unprocessed, attempt not spent")

    # -- the loop ------------------------------------------------------------------------------

    def run(self, *, drain: bool = False, once: bool = False) -> None:
        """Work until asked to stop; with drain, until nothing is claimable; with once, one job."""
        try:
            while not self.shutdown.requested:
                step = self.run_once(claim_next=not once)
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
        finally:
            self._release_held()  # a stop came after the last outcome's transaction claimed it

    def _idle(self) -> None:
        """Between jobs: purge if due, say we are alive, and wait for work (not a fixed tick)."""
        self.processes.spares_wanted = 1
        self.processes.trim_spares()
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
        wait_readable([self.waker.fileno()], seconds)
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
