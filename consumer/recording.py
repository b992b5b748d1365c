"""Recording a run's outcome: the one place where a run's Ending becomes a call to the store.

How a run ended (consumer/running.py) decides what is written: a result or an error as the
job's new status, the job given back, or nothing (someone else owns it). A write that the
database cannot take now (down, failing over to a standby) is retried until it can, fenced by
the lease id; a refused result counts as a failed attempt; a lost lease discards the outcome.
The consumer's loop decides only whether the outcome goes alone, with the next claim
(`record_and_claim`) or with the start of the job held behind it (`record_and_start`).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Any, TypedDict

from consumer.logs import event
from consumer.running import Ending, Outcome
from pqueue import FINAL, DatabaseBusy, Job, LeaseLost, PQError, Status, WorkQueue

log = logging.getLogger("consumer")

RECORD_RETRY = 0.5  # pause between tries of an outcome the database could not take
RECORD_LOG_EVERY = 10.0  # while it cannot be written, one log line per this many seconds
# The endings that write the job's new status, and which status.
STATUS_OF = {
    Ending.SUCCEEDED: Status.PROCESSED,
    Ending.FAILED: Status.CRASHED,
    Ending.TIMED_OUT: Status.CRASHED,
    Ending.REFUSED: Status.MANUAL_INTERVENTION,
}
RECORDED = (Ending.SUCCEEDED, Ending.FAILED, Ending.TIMED_OUT, Ending.REFUSED, Ending.STOPPED)


class Written(TypedDict):
    """The keyword arguments of a recorded ending that finish_and_claim and finish_and_start share."""

    lease_id: int
    worker_id: str
    result: Any
    error: str | None
    timed_out: bool


class Recorder:
    """Writes outcomes for one consumer; tells it when the database stopped answering."""

    def __init__(
        self,
        store: WorkQueue,
        worker_id: str,
        *,
        on_database_lost: Callable[[Exception], None],
        on_final: Callable[[], None],
        should_stop: Callable[[], bool] = lambda: False,
    ) -> None:
        self.store = store
        self.worker_id = worker_id
        self.on_database_lost = on_database_lost
        self.should_stop = should_stop  # a stop request ends the wait to record an outcome
        self.on_final = on_final  # told when an outcome queued a callback (delivery wakes up)

    def record(self, job: Job, outcome: Outcome, seconds: float) -> None:
        """Write the outcome on its own."""
        ending = outcome.ending
        if ending in RECORDED:
            self._finish(job, self.status_for(outcome), outcome, seconds)
        elif ending == Ending.RELEASED:
            self.release(job, outcome.error)
        elif ending == Ending.RENEWAL_FAILED:
            # The algorithm is dead; record the failure if the database answers, else rescue will.
            self._finish(job, Status.CRASHED, outcome, seconds, patient=False)
        else:  # LEASE_LOST: the job is someone else's now
            event(log, "not_recorded", job.id, reason=ending.value)

    def record_and_claim(
        self, job: Job, outcome: Outcome, *, queue: str, lease_seconds: float
    ) -> tuple[Job, Job | None] | None:
        """Write a recorded ending and claim the next job in one transaction: (the job as
        written, the next one or None); None when it failed, and then nothing was written."""
        if outcome.ending not in RECORDED:
            return None
        try:
            return self.store.finish_and_claim(
                job.id,
                self.status_for(outcome),
                **self._written(job, outcome),
                queue=queue,
                lease_seconds=lease_seconds,
            )
        except PQError:
            return None  # record() alone, with its retries and its answers to each error

    def record_and_start(
        self, job: Job, outcome: Outcome, *, held: Job, lease_seconds: float
    ) -> tuple[Job, Job] | None:
        """Write a recorded ending and start the job held behind its lease in one transaction:
        (the job as written, the held one started); None when it failed (the database did not
        answer, the lease was lost, or the held job can no longer start), and then nothing was
        written: the held job's process must be gone before the outcome is written alone."""
        if outcome.ending not in RECORDED:
            return None
        try:
            return self.store.finish_and_start(
                job.id,
                self.status_for(outcome),
                **self._written(job, outcome),
                held_job=held.id,
                lease_seconds=lease_seconds,
            )
        except PQError as exc:
            event(log, "held_not_started", held.id, level=logging.WARNING, reason=f"{type(exc).__name__}: {exc}")
            return None

    def _written(self, job: Job, outcome: Outcome) -> Written:
        """What finish_and_claim and finish_and_start write of a recorded ending, besides its status:
        fenced by the job's lease, in this consumer's name."""
        return Written(
            lease_id=job.lease_id,
            worker_id=self.worker_id,
            result=outcome.result,
            error=outcome.error,
            timed_out=outcome.ending == Ending.TIMED_OUT,
        )

    @staticmethod
    def status_for(outcome: Outcome) -> Status:
        status = STATUS_OF.get(outcome.ending, outcome.target)
        assert status is not None, outcome
        return status

    def _finish(self, job: Job, status: Status, outcome: Outcome, seconds: float, *, patient: bool = True) -> None:
        """update_status, retried while the database is away (down, failing over, or only a
        standby answers), even past the lease: the write is fenced by the lease id, so it lands
        only if no rescuer took the job meanwhile, and a run that ended well is not lost to a
        failover. It stops at a stop request (rescue then takes the job)."""
        result, error, timed_out = outcome.result, outcome.error, outcome.ending == Ending.TIMED_OUT
        since, logged, told, retried = time.monotonic(), -math.inf, False, False
        while True:
            try:
                done = self.store.update_status(
                    job.id, status, lease_id=job.lease_id, result=result, error=error, timed_out=timed_out
                )
            except LeaseLost as exc:
                if retried and str(exc.status) == status.value:  # likely an earlier try's, whose reply was lost
                    event(log, "outcome_found_recorded", job.id, status=status.value)
                    return
                event(log, "outcome_discarded", job.id, level=logging.WARNING, reason=str(exc))
                return
            except DatabaseBusy as exc:
                retried, now = True, time.monotonic()
                past_lease = now + RECORD_RETRY >= outcome.lease_valid_until
                if not patient or (past_lease and self.should_stop()):
                    self.on_database_lost(exc)
                    if patient:
                        event(log, "outcome_unrecorded", job.id, level=logging.ERROR, error=str(exc), note="stopping")
                    return
                if past_lease and not told:  # the consumer claims nothing until the database is back
                    self.on_database_lost(exc)
                    told = True
                if now - logged >= RECORD_LOG_EVERY:
                    logged = now
                    event(log, "record_retry", job.id, level=logging.WARNING, status=status.value, error=str(exc))
                time.sleep(RECORD_RETRY)
                continue
            except PQError as exc:
                if status != Status.PROCESSED:
                    self.on_database_lost(exc)
                    return
                # The result itself was refused (the database would not store it): the attempt failed.
                status, result, error = Status.CRASHED, None, f"ResultNotStored: {exc}"
                continue
            if time.monotonic() - since >= RECORD_RETRY:
                event(log, "recorded_late", job.id, after=round(time.monotonic() - since, 3))
            self.finished(done, seconds)
            return

    def finished(self, done: Job, seconds: float) -> None:
        """Log the written outcome and wake the delivery of its callback, if it queued one."""
        fields: dict[str, object] = {"status": done.status.value, "seconds": round(seconds, 3)}
        level = logging.INFO
        if done.status != Status.PROCESSED:
            lines = (done.error or "").strip().splitlines()
            fields["error"] = lines[-1] if lines else None
            level = logging.WARNING
        event(log, "finished", done.id, level=level, **fields)
        if done.status in FINAL and done.callback_url:
            self.on_final()

    def release(self, job: Job, why: str | None = None) -> None:
        """Give the job back without spending its attempt (a stop, or a start that came too late)."""
        try:
            reason = why or f"consumer {self.worker_id} shutting down"
            self.store.release(job.id, job.lease_id, reason=reason)
        except LeaseLost as exc:
            event(log, "release_refused", job.id, level=logging.WARNING, reason=str(exc))
        except PQError as exc:
            event(log, "release_failed", job.id, level=logging.ERROR, error=str(exc), note="rescue will retry it")
        else:
            event(log, "released", job.id, note="back to unprocessed, attempt not spent")
