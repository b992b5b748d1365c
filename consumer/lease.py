"""Renewing a running job's lease from a thread, so a slow database never delays the kill deadline.

The supervising loop never waits for a renewal: it reads `valid_until`, measured on the monotonic
clock from the moment the last successful renewal was *sent* (the database set the new expiry
after that moment, so the local deadline is never later than the real one).

The thread starts when the first renewal is due (`start_when_due`), not when the job starts: a
job shorter than lease/3 costs no thread, and starting one (which waits for it to be scheduled)
never delays the handoff between jobs.

The keeper is also the one owner of the job's kill deadline (`arm`): the lease's end less its
margin, or the job timeout's hard kill, whichever comes first. It tells the helper before the
payload goes out and again after every renewal, so the helper can kill the job even while this
process is stopped, hung or starved of the CPU. With the next job claimed ahead
(consumer/claim_ahead.py) it owns that job process's deadline too (`cover`), until the next
job's own start is committed: whatever runs in a seat runs under the lease of the row that
counts the seat.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable

from consumer.logs import event
from pqueue import DatabaseError, Job, LeaseLost, PQError, StopRequested, WorkQueue, lease_margin

log = logging.getLogger("consumer")


class LeaseKeeper(threading.Thread):
    """Heartbeats every lease/3; reports a stop request or a lost lease through `problem`."""

    def __init__(
        self,
        store: WorkQueue,
        job: Job,
        lease_seconds: float,
        renewed_at: float,
        wake: Callable[[], None],
        touch: Callable[[], None] = lambda: None,
    ) -> None:
        super().__init__(name=f"lease-{job.id}", daemon=True)
        self.store = store
        self.job = job
        self.lease_seconds = lease_seconds
        self.interval = lease_seconds / 3
        self.renewed_at = renewed_at
        self.problem: StopRequested | LeaseLost | None = None
        self._wake = wake
        self._touch = touch
        self._tell_deadline: Callable[[float], object] = lambda _when: None  # see arm
        self._tell_covered: Callable[[float], object] = lambda _when: None  # see cover
        self._hard_stop = math.inf
        self._stopped = threading.Event()
        self._failing_since: float | None = None
        self._first_renewal = time.monotonic() + self._pause()  # as if the thread started now

    @property
    def valid_until(self) -> float:
        """Monotonic moment after which the algorithm must no longer run: lease minus margin."""
        return self.renewed_at + self.lease_seconds - lease_margin(self.lease_seconds)

    def arm(self, tell_deadline: Callable[[float], object], hard_stop: float) -> None:
        """Own the kill deadline from now on: tell it now, and again after every renewal.

        `hard_stop` is the monotonic moment the job timeout kills the job at the latest (its
        start, plus the timeout, plus the grace of its SIGTERM)."""
        self._tell_deadline, self._hard_stop = tell_deadline, hard_stop
        self._push_deadline()

    def cover(self, tell_deadline: Callable[[float], object]) -> None:
        """Own the kill deadline of the job process held behind this lease (its next job, claimed
        ahead) from now on: this lease's end less its margin (never this job's timeout, which is
        not the held job's), told now and again after every renewal. The held job's own lease
        keeper takes it over once its start is committed."""
        self._tell_covered = tell_deadline
        tell_deadline(self.valid_until)

    def _push_deadline(self) -> None:
        self._tell_deadline(min(self.valid_until, self._hard_stop))
        self._tell_covered(self.valid_until)

    def start_when_due(self, now: float) -> float:
        """Start renewing if the first renewal is due; when to ask again (inf once started)."""
        if self.ident is None and now < self._first_renewal:
            return self._first_renewal
        self.start_now()
        return math.inf

    def start_now(self) -> None:
        """Start renewing at once (from the supervising thread), unless started or stopped."""
        if self.ident is None and not self._stopped.is_set():
            self.start()

    def touch(self) -> None:
        """Say the consumer is alive (rate-limited by the consumer), for jobs that never renew."""
        self._touch()

    def stop(self) -> None:
        """Stop renewing (the job is over); a renewal already in flight is left to finish."""
        self._stopped.set()

    def run(self) -> None:
        # Started when the first renewal is due: renew first, then every pause.
        pause = max(0.0, self._first_renewal - time.monotonic())
        while not self._stopped.wait(pause):
            if not self._renew():
                return
            pause = self._pause()

    def _pause(self) -> float:
        """Every lease/3; sooner when half of what is left of the lease has gone (a slow claim),
        and every half second while renewals fail."""
        pause = min(self.interval, (self.valid_until - time.monotonic()) / 2)
        if self._failing_since is not None:
            pause = min(pause, 0.5)
        return max(0.05, pause)

    def _renew(self) -> bool:
        sent = time.monotonic()
        try:
            self.store.heartbeat(self.job.id, self.job.lease_id, lease_seconds=self.lease_seconds)
        except (StopRequested, LeaseLost) as exc:
            if not self._stopped.is_set():
                self.problem = exc
                self._wake()
            return False
        except (DatabaseError, PQError, OSError) as exc:
            self._failed(exc)
            return True
        if self._failing_since is not None:
            event(log, "lease_renewed_again", self.job.id, after=round(sent - self._failing_since, 3))
            self._failing_since = None
        self.renewed_at = max(self.renewed_at, sent)
        self._push_deadline()
        self._touch()
        return True

    def _failed(self, exc: Exception) -> None:
        if self._stopped.is_set():
            return
        now = time.monotonic()
        if self._failing_since is None:
            self._failing_since = now
        event(
            log,
            "lease_renewal_failed",
            self.job.id,
            level=logging.WARNING,
            error=f"{type(exc).__name__}: {exc}",
            seconds_left=round(self.valid_until - now, 3),
        )
