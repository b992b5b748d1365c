"""Each queue's predicted line (pqueue/predicted_line.py), kept in this process and shared by every
wait it answers (GET /jobs/{id}, /next, pq show, the dashboard, the calibration recorder).

A kept line serves while it is younger than PQ_WAIT_SNAPSHOT_SECONDS by the database's clock and
the queue's stamp (pqueue/sql/waitline.py `stamp`: its settings and pause, its running jobs, the
partners, the live consumers) is the one it was computed under. Jobs submitted since are answered
by extending it, so submissions alone never cost a new line. It is a cache, not a source of
truth: every process computes the same line from the same database at the same moment.

It holds only lines that can still serve: each time a line is computed, the lines of queues not
asked since they turned PQ_WAIT_SNAPSHOT_SECONDS old (by the same database clock) are dropped, so
a process that answered for many queues keeps only those asked lately (none with the setting 0).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from datetime import datetime

from pqueue.predicted_line import Line

USED_SHARE_SECONDS = 60.0


class LineCache:
    """Lines by queue; one computation at a time per queue (the others wait and share it)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._lock = threading.Lock()
        self._computing: dict[str, threading.Lock] = {}
        self._kept: dict[str, tuple[Line, Hashable]] = {}
        self._used: tuple[datetime, dict[str, float]] | None = None

    def line(
        self,
        queue: str,
        now: datetime,
        stamp: Hashable,
        compute: Callable[[], Line],
        usable: Callable[[Line], bool] = lambda line: True,
    ) -> Line:
        """The queue's kept line if it is fresh at `now`, was computed under `stamp` and is
        `usable` for the question at hand; else a new one, kept for the next questions."""
        with self._lock:
            computing = self._computing.setdefault(queue, threading.Lock())
        with computing:
            kept = self._kept.get(queue)
            if kept is not None:
                line, kept_stamp = kept
                if kept_stamp == stamp and self._fresh(line, now) and usable(line):
                    return line
            line = compute()
            with self._lock:
                self._drop_stale(line.snapshot.now)
                if self.seconds > 0:
                    self._kept[queue] = (line, stamp)
            return line

    def queues(self) -> set[str]:
        """The queues whose lines are kept now."""
        with self._lock:
            return set(self._kept)

    def _fresh(self, line: Line, now: datetime) -> bool:
        return 0 <= (now - line.snapshot.now).total_seconds() < self.seconds

    def _drop_stale(self, now: datetime) -> None:
        """Forget the lines too old to serve at `now`, a new line's moment (under self._lock), and
        the computation locks of queues with no line kept unless held (a thread that took one and
        has yet to hold it may meet a new one: at worst two threads compute that queue's line at
        once, as two processes do)."""
        for queue, (line, _) in list(self._kept.items()):
            if (now - line.snapshot.now).total_seconds() >= self.seconds:
                del self._kept[queue]
        for queue, computing in list(self._computing.items()):
            if queue not in self._kept and not computing.locked():
                del self._computing[queue]

    def used_shares(self, now: datetime, compute: Callable[[], dict[str, float]]) -> dict[str, float]:
        """Each partner's share of the last day's seat time, read again once USED_SHARE_SECONDS
        old: it is a day's figure (reading it scans the day's runs, far more than a line costs)."""
        with self._lock:
            kept = self._used
        if kept is not None and 0 <= (now - kept[0]).total_seconds() < max(self.seconds, USED_SHARE_SECONDS):
            return kept[1]
        used = compute()
        with self._lock:
            self._used = (now, used)
        return used
