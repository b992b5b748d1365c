"""Backpressure: refuse new jobs while PQ_MAX_QUEUE_DEPTH jobs are waiting.

Counting waiting jobs costs a scan of an index (milliseconds at 100k rows), too much for every
request. The count is cached for at most `max_age` seconds and raised by each job this process
adds in between, so one intake cannot overshoot between reads; several intake replicas may
overshoot by what the others accept within one `max_age`, which is harmless for a soft limit.
"""

from __future__ import annotations

import threading
import time

from pqueue import CLAIMABLE, Insights, PQError

RETRY_AFTER_FULL_SECONDS = 5


class QueueFull(PQError):
    """The waiting jobs reached PQ_MAX_QUEUE_DEPTH; the partner should try again later."""

    def __init__(self, waiting: int, limit: int) -> None:
        self.waiting = waiting
        self.limit = limit
        super().__init__(
            f"the queue is full: {waiting} jobs are waiting and the limit is {limit} (PQ_MAX_QUEUE_DEPTH); "
            f"try again in {RETRY_AFTER_FULL_SECONDS}s"
        )


class WaitingDepth:
    """The number of waiting jobs, read from the database at most every `max_age` seconds.

    The count runs outside the lock that guards the cached value, so the event loop can call
    `added` and `check_room` without ever waiting for a query: only `read` touches the database.
    """

    def __init__(self, store: Insights, limit: int, max_age: float = 0.5) -> None:
        self.store = store
        self.limit = limit
        self.max_age = max_age
        self._lock = threading.Lock()  # guards _value and _read_at, held for microseconds
        self._reading = threading.Lock()  # one count at a time
        self._value = 0
        self._read_at = float("-inf")

    def needs_read(self) -> bool:
        """True when the cached count is too old and nobody is reading a new one already."""
        return time.monotonic() - self._read_at >= self.max_age and not self._reading.locked()

    def read(self) -> None:
        """Count the waiting jobs in the database (blocking: call it from a thread)."""
        with self._reading:
            if time.monotonic() - self._read_at < self.max_age:
                return  # another thread read it while this one waited
            value = self.store.count_items(status=list(CLAIMABLE))
            with self._lock:
                self._value = value
                self._read_at = time.monotonic()

    def current(self) -> int:
        """The cached count, read again from the database when it is older than max_age."""
        if time.monotonic() - self._read_at >= self.max_age:
            self.read()
        return self._value

    def check_room(self, adding: int) -> None:
        """Raise QueueFull unless `adding` more jobs fit under the limit (reads when stale)."""
        self._check(self.current(), adding)

    def check_room_cached(self, adding: int) -> None:
        """check_room on the cached count, never touching the database (for the event loop)."""
        self._check(self._value, adding)

    def added(self, count: int) -> None:
        """Count jobs this process stored since the last read."""
        with self._lock:
            self._value += count

    def _check(self, waiting: int, adding: int) -> None:
        if waiting + adding > self.limit:
            raise QueueFull(waiting, self.limit)
