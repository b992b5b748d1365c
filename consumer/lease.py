"""Renewing a running job's lease from a thread, so a slow database never delays the kill deadline.

The supervising loop never waits for a renewal: it reads `valid_until`, measured on the monotonic
clock from the moment the last successful renewal was *sent* (the database set the new expiry
after that moment, so the local deadline is never later than the real one).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from consumer.logs import event
from pqueue import DatabaseError, Job, LeaseLost, PersistentQ, PQError, StopRequested, lease_margin

log = logging.getLogger("consumer")


class LeaseKeeper(threading.Thread):
    """Heartbeats every lease/3; reports a stop request or a lost lease through `problem`."""

    def __init__(
        self,
        store: PersistentQ,
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
        self._stopped = threading.Event()
        self._failing_since: float | None = None

    @property
    def valid_until(self) -> float:
        """Monotonic moment after which the algorithm must no longer run: lease minus margin."""
        return self.renewed_at + self.lease_seconds - lease_margin(self.lease_seconds)

    def stop(self) -> None:
        """Stop renewing (the job is over); a renewal already in flight is left to finish."""
        self._stopped.set()

    def run(self) -> None:
        while not self._stopped.wait(self._pause()):
            if not self._renew():
                return

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
