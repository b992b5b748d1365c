"""The consumer: claim one job, run it in a job process, record the outcome; between jobs, wait.

`run_once()` is one claim-run-record step (testable without threads or signals); `run()` is the
loop around it that waits for work, rescues expired leases, purges old jobs and stops on request.

With a backlog, the transaction that records an outcome also claims the next job (`Chained`):
one commit per job. With PQ_CLAIM_AHEAD the next job is claimed while the last one runs, held
in a ready job process, started by the helper the moment the last one's process is gone, and
its start recorded with the last outcome (`HandedOver`, consumer/claim_ahead.py). Either is one
value that goes around the loop: `run_once` takes it in and runs it (a chained job may be given
back instead), and returns the next one; `release` is the only other way out (a stop, the
loop's end).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from functools import partial

from consumer.claim_ahead import ClaimAhead, HandedOver
from consumer.lease import LeaseKeeper
from consumer.logs import event
from consumer.processes import wait_readable
from consumer.recording import Recorder
from consumer.running import Ending, JobRun, Outcome, RunContext
from consumer.spares import JobProcess, Spares
from consumer.stopping import Shutdown, Waker
from pqueue import DatabaseError, Job, PQError, Settings, SilenceWatch, Status, WorkQueue

log = logging.getLogger("consumer")

IDLE_WAIT = 1.0  # longest wait for work in one go (a stop request ends it at once: the waker)
SPARE_WAIT = 30.0  # longest wait for a forked job process to become ready
# Longest wait for the next job process before recording an outcome: with one ready, the outcome's
# transaction also claims the next job; without, the outcome is recorded alone.
SPARE_CHAIN_WAIT = 0.05
POLICY_EVERY = 5.0  # seconds between reads of the queue's stored policy (its job timeout)
PURGE_EVERY = 3600.0  # seconds between retention purges (done only while idle)
PURGED_STATUSES = (Status.PROCESSED, Status.CANCELLED)  # manual_intervention waits for a person
DATABASE_RETRY_MIN = 0.5  # first pause before checking a database that stopped answering
# Longest pause between checks while the database does not answer (or only a standby does): a
# promoted standby is claimed from within this much of taking writes.
DATABASE_RETRY_MAX = 2.0
STILL_UNAVAILABLE_EVERY = 10.0  # seconds between log lines while the database stays away


class Step(StrEnum):
    """What one run_once did."""

    RAN = "ran"  # a job was claimed and run
    IDLE = "idle"  # nothing claimable (empty, paused, or every seat taken)
    UNAVAILABLE = "unavailable"  # the database did not answer, or no job process could be readied
    STOPPING = "stopping"  # a stop was requested; nothing claimed


@dataclass
class Chained:
    """A job claimed by the transaction that recorded the last outcome, to run next.

    `notes` are that outcome's log line and delivery wake-up: told once this job has its payload
    (the payload goes first), or when it is given back."""

    job: Job
    claimed_at: float  # monotonic, when its claim was sent: its lease counts from then
    notes: list[Callable[[], None]] = field(default_factory=list)

    def tell(self) -> None:
        """Tell the notes (once)."""
        notes, self.notes = self.notes, []
        for note in notes:
            note()

    def release(self, recorder: Recorder) -> None:
        """Give the job back unrun, its attempt not spent (a stop, or no job process for it)."""
        self.tell()
        recorder.release(self.job)


Next = Chained | HandedOver  # the job the last outcome's transaction claimed or started


class Consumer:
    """Runs the queue's jobs one at a time in job processes forked by the warm helper."""

    def __init__(
        self,
        store: WorkQueue,
        settings: Settings,
        worker_id: str,
        spares: Spares,
        *,
        queue: str | None = None,
        waker: Waker | None = None,
        shutdown: Shutdown | None = None,
        on_final: Callable[[], None] = lambda: None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.worker_id = worker_id
        self.spares = spares
        self.queue = queue or settings.queue
        self.waker = waker or Waker()
        self.shutdown = shutdown or Shutdown(self.waker)
        self.context = RunContext(settings, self.shutdown, self.waker, spares)
        self.on_final = on_final  # told when an outcome queued a callback (delivery wakes up)
        self.recorder = Recorder(
            store,
            worker_id,
            on_database_lost=self._database_lost,
            on_final=lambda: self.on_final(),
            should_stop=lambda: self.shutdown.requested,
        )
        self.ahead: ClaimAhead | None = None  # with PQ_CLAIM_AHEAD: the next job held while one runs
        if settings.claim_ahead:
            spares.keep_while_idle(2)  # the first job's and its hold's, ready before a backlog comes
            self.ahead = ClaimAhead(
                store,
                self.recorder,
                spares,
                self.shutdown,
                worker_id=worker_id,
                queue=self.queue,
                lease_seconds=settings.lease_seconds,
                may_hold=self._may_hold,
                after_hold=self._rescue_if_due,
            )
        self.database_ok = True
        self.jobs_run = 0
        self._next_rescue = 0.0
        self._silence = SilenceWatch()  # rescue only what this process saw go unrenewed
        self._next_purge = 0.0
        self._timeout = settings.job_timeout  # the queue's, once read (_read_policy_if_due)
        self._policy_read_at = -math.inf
        self._next_touch = 0.0
        self._database_retry = DATABASE_RETRY_MIN
        self._unavailable_since = 0.0  # monotonic, while not database_ok
        self._unavailable_logged = 0.0

    # -- one step ------------------------------------------------------------------------------

    def run_once(self, chained: Next | None = None, *, claim_next: bool = False) -> tuple[Step, Next | None]:
        """Run `chained` (claimed or started with the last outcome), else claim one job and run
        it, to its recorded end; or say why nothing ran. Returns the step and the next job.

        With claim_next, the transaction that records the outcome also claims the next job when
        a job process is ready for it (or, with PQ_CLAIM_AHEAD, starts the job held while this
        one ran); the next run_once runs that job without claiming again.
        """
        if isinstance(chained, HandedOver):  # already running: supervised whatever else happens
            if chained.cut is not None:  # killed at the hand-off just after it began: given back
                chained.release(self.spares, self.recorder)
                return Step.RAN, None
            return Step.RAN, self._run_handed_over(chained, claim_next)
        if chained is not None:
            if not self.shutdown.requested and self.spares.ready(SPARE_CHAIN_WAIT):
                return Step.RAN, self._run(chained.job, chained.claimed_at, claim_next, chained.tell)
            chained.release(self.recorder)  # a stop, or its job process died meanwhile
        if self.shutdown.requested:
            return Step.STOPPING, None
        if not self.database_ok and not self._database_answers():
            return Step.UNAVAILABLE, None
        self._rescue_if_due()
        self._read_policy_if_due()
        if not self.spares.ensure(SPARE_WAIT):
            event(log, "no_job_process", level=logging.WARNING, note="claiming paused until one is ready")
            return Step.UNAVAILABLE, None
        claimed_at = time.monotonic()
        try:
            job = self.store.get_item(self.worker_id, queue=self.queue, lease_seconds=self.settings.lease_seconds)
        except DatabaseError as exc:
            self._database_lost(exc)
            return Step.UNAVAILABLE, None
        self._database_retry = DATABASE_RETRY_MIN  # a claim went through: the database is really back
        if job is None:
            return Step.IDLE, None
        if self.shutdown.requested:  # the signal came while claiming: give the job straight back
            self.recorder.release(job)
            return Step.STOPPING, None
        self._log_claimed(job)
        return Step.RAN, self._run(job, claimed_at, claim_next)

    def _run(
        self, job: Job, claimed_at: float, claim_next: bool, on_started: Callable[[], None] = lambda: None
    ) -> Next | None:
        """Run the job on the oldest ready spare and record its outcome; the next job, if any."""
        return self._supervise(job, self.spares.take(), claimed_at, claim_next, on_started)

    def _run_handed_over(self, handed: HandedOver, claim_next: bool) -> Next | None:
        """Supervise the job the helper started after the last one, and record its outcome."""
        return self._supervise(handed.job, handed.process, handed.claimed_at, claim_next, handed.tell, handed_over=True)

    def _supervise(
        self,
        job: Job,
        process: JobProcess,
        claimed_at: float,
        claim_next: bool,
        on_started: Callable[[], None],
        *,
        handed_over: bool = False,
    ) -> Next | None:
        # The lease the claim was given (the queue's stored lease, else ours): the keeper's validity,
        # the helper's kill deadline and the rescuers' wait all count this one length.
        lease_seconds = job.lease_seconds or self.settings.lease_seconds
        lease = LeaseKeeper(self.store, job, lease_seconds, claimed_at, self.waker.wake, self._touch_quietly)
        ahead = self.ahead if claim_next else None
        run = JobRun(
            job,
            process,
            lease,
            self.context,
            self._timeout,
            on_started=on_started,
            handed_over=handed_over,
            ahead=ahead,
        )
        outcome = run.supervise()
        on_started()  # (already told, unless the job process died before it had the payload)
        self.jobs_run += 1
        seconds = time.monotonic() - run.started
        if ahead is not None:
            handed = ahead.hand_over(job, outcome, seconds)  # the held job's process is gone unless handed over
            if handed is not None:
                self._database_retry = DATABASE_RETRY_MIN
                return handed
        return self._record(job, outcome, seconds, claim_next)

    @staticmethod
    def _log_claimed(job: Job) -> None:
        event(log, "claimed", job.id, attempt=f"{job.attempts}/{job.max_attempts}", lease=job.lease_id, queue=job.queue)

    # -- recording -----------------------------------------------------------------------------

    def _record(self, job: Job, outcome: Outcome, seconds: float, claim_next: bool) -> Chained | None:
        """Write the outcome: with the next claim in one transaction when the next job can start
        at once (the job claimed is returned), else alone."""
        if claim_next and self._may_chain():
            claimed_at = time.monotonic()
            written = self.recorder.record_and_claim(
                job, outcome, queue=self.queue, lease_seconds=self.settings.lease_seconds
            )
            if written is not None:  # (else nothing was written: the outcome goes alone, below)
                self._database_retry = DATABASE_RETRY_MIN
                return self._chained(*written, seconds, claimed_at)
        self.recorder.record(job, outcome, seconds)
        if outcome.ending == Ending.RENEWAL_FAILED:
            self.database_ok = False  # claiming waits until the database answers again
        return None

    def _may_hold(self) -> bool:
        """Whether the next job may be held while this one runs: not stopping, the database
        answering. A rescue that is due comes after the hold (`after_hold`), still while this job
        runs (jobs handed over back to back never pass through run_once's claim, which rescues
        otherwise): before it, its transaction could make the hold too late for a short job."""
        return not self.shutdown.requested and self.database_ok

    def _may_chain(self) -> bool:
        """Whether the next claim may go with the outcome: not stopping, no rescue due (run_once
        does it before its own claim), and a job process ready for the next job."""
        if self.shutdown.requested or not self.database_ok or time.monotonic() >= self._next_rescue:
            return False
        return self.spares.ready(SPARE_CHAIN_WAIT)

    def _chained(self, done: Job, claimed: Job | None, seconds: float, claimed_at: float) -> Chained | None:
        if claimed is None:
            self.recorder.finished(done, seconds)
            return None
        self.spares.expect_back_to_back(True)  # jobs come back to back: fork ahead of them
        # The seat is taken again: the next job's payload goes first; the log lines and the wake-up
        # of the delivery thread (which would compete for the interpreter lock) come after it.
        notes: list[Callable[[], None]] = [
            partial(self.recorder.finished, done, seconds),
            partial(self._log_claimed, claimed),
        ]
        return Chained(claimed, claimed_at, notes)

    # -- the loop ------------------------------------------------------------------------------

    def run(self, *, drain: bool = False, once: bool = False) -> None:
        """Work until asked to stop; with drain, until nothing is claimable; with once, one job."""
        chained: Next | None = None
        if self.ahead is not None and not once:
            self.ahead.rehearse()
        try:
            while not self.shutdown.requested:
                step, chained = self.run_once(chained, claim_next=not once)
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
            if isinstance(chained, HandedOver):  # a stop came after the last outcome's transaction started it
                chained.release(self.spares, self.recorder)
            elif chained is not None:  # a stop came after the last outcome's transaction claimed it
                chained.release(self.recorder)

    def _idle(self) -> None:
        """Between jobs: purge if due, say we are alive, and wait for work (not a fixed tick)."""
        self.spares.expect_back_to_back(False)
        self._purge_if_due()
        self._touch_quietly()
        now = time.monotonic()
        timeout = max(0.01, min(IDLE_WAIT, self._next_rescue - now))
        self.waker.drain()  # before looking at the flag, so a stop asked after the look wakes the wait
        if self.shutdown.requested:
            return
        try:
            self.store.wait_for_work(timeout, queue=self.queue, wake=self.waker.fileno())
        except DatabaseError as exc:
            self._database_lost(exc)
            self._pause(self._database_retry)

    def _pause(self, seconds: float) -> None:
        """Sleep, but wake at once for a stop request."""
        wait_readable([self.waker.fileno()], seconds)
        self.waker.drain()

    # -- housekeeping --------------------------------------------------------------------------

    def _read_policy_if_due(self) -> None:
        """Read the queue's stored job timeout (else PQ_JOB_TIMEOUT) at most every POLICY_EVERY
        seconds, before a claim and never between a claim and its start: a `pq queue set
        --timeout` holds from the next claim without a read per job."""
        now = time.monotonic()
        if now < self._policy_read_at + POLICY_EVERY:
            return
        try:
            stored = self.store.queue_settings(self.queue)
        except PQError as exc:
            event(log, "policy_read_failed", level=logging.WARNING, error=str(exc))
            return
        self._timeout = stored.job_timeout if stored is not None else self.settings.job_timeout
        self._policy_read_at = now

    def _rescue_if_due(self) -> None:
        now = time.monotonic()
        if now < self._next_rescue:
            return
        self._next_rescue = now + self.settings.lease_seconds / 2
        try:
            rescued = self.store.rescue_expired(actor=self.worker_id, watch=self._silence)
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
            self._unavailable_since = self._unavailable_logged = time.monotonic()
        else:
            self._database_retry = min(DATABASE_RETRY_MAX, self._database_retry * 2)
        self.database_ok = False

    def _database_answers(self) -> bool:
        """Whether the database answers and takes writes again (a standby answers, but does not)."""
        try:
            self.store.ping()
        except PQError as exc:
            self._database_retry = min(DATABASE_RETRY_MAX, self._database_retry * 2)
            now = time.monotonic()
            if now - self._unavailable_logged >= STILL_UNAVAILABLE_EVERY:
                self._unavailable_logged = now
                away = round(now - self._unavailable_since, 1)
                event(log, "database_still_unavailable", level=logging.WARNING, seconds=away, error=str(exc))
            return False
        event(log, "database_available", after=round(time.monotonic() - self._unavailable_since, 3))
        self.database_ok = True
        self._next_rescue = 0.0  # leases may have expired meanwhile: rescue before claiming
        return True
