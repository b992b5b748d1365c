"""Waiting depth over time, sampled each time a page renders.

The database keeps no history of queue depth, so the dashboard records the count it reads on
every render (auto-refresh included). The samples live in the server process and are shared
by every viewer; they start empty when the dashboard starts.
"""

from __future__ import annotations

import threading
from collections import deque
from datetime import datetime, timedelta

# At one sample a second this holds the last day; slower refreshes reach further back.
CAPACITY = 86_400
# Several viewers refreshing at once should not crowd the chart with near-duplicates.
MIN_SPACING = timedelta(seconds=1)


class DepthHistory:
    """A bounded, thread-safe series of (time, waiting jobs)."""

    def __init__(self, capacity: int = CAPACITY) -> None:
        self._samples: deque[tuple[datetime, int]] = deque(maxlen=capacity)
        self._lock = threading.Lock()

    def record(self, at: datetime, waiting: int) -> None:
        """Add a sample unless the last one is less than MIN_SPACING old."""
        with self._lock:
            if self._samples and at - self._samples[-1][0] < MIN_SPACING:
                return
            self._samples.append((at, waiting))

    def since(self, start: datetime) -> list[tuple[datetime, int]]:
        """The samples taken at or after start, oldest first."""
        with self._lock:
            return [sample for sample in self._samples if sample[0] >= start]
