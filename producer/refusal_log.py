"""One log line per outage, not one per refused request.

While the database is down or its disk is full, every request is refused: hundreds a second
under load. A warning for each would bury the cause among copies of itself (and, on a full
disk, eat what space is left). The first refusal of a kind is logged at once; repeats within
`interval` seconds are counted, and the next line says how many there were.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

REPEAT_INTERVAL_SECONDS = 10.0


class RefusalLog:
    """Warnings that say the first refusal of each kind, then at most one line per interval."""

    def __init__(
        self,
        logger: logging.Logger,
        interval: float = REPEAT_INTERVAL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.interval = interval
        self.clock = clock
        self._last: dict[str, tuple[float, int]] = {}  # kind → (when last logged, refusals since)
        self._lock = threading.Lock()

    def warning(self, kind: str, message: str) -> None:
        """Log this refusal unless one of its kind was logged less than `interval` ago."""
        now = self.clock()
        with self._lock:
            logged_at, unsaid = self._last.get(kind, (-self.interval, 0))
            if now - logged_at < self.interval:
                self._last[kind] = (logged_at, unsaid + 1)
                return
            self._last[kind] = (now, 0)
        if unsaid:
            message += f" ({unsaid} more refused like it since this was last logged, {now - logged_at:.0f}s ago)"
        self.logger.warning("%s", message)
