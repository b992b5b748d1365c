"""A job that takes as long as it is told: {"seconds": 60} -> {"slept": 60}.

For watching what the tour describes with a job long enough to see: Ctrl-C while it runs, the
consumer killed in the middle of it, the job timeout. Run the system with
`PQ_ALGORITHM=consumer.algorithms.sleep:run make run`.
"""

from __future__ import annotations

import time
from typing import Any

from pqueue import permanent

LONGEST = 86400.0


def run(payload: Any) -> dict[str, float]:
    """Sleep for payload["seconds"] (default 10), then say so. Safe to run again."""
    seconds = payload.get("seconds", 10) if isinstance(payload, dict) else None
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not 0 <= seconds <= LONGEST:
        raise permanent(
            ValueError(f'payload must be an object like {{"seconds": 60}} (0 to {LONGEST:g}), got {payload!r}')
        )
    time.sleep(seconds)
    return {"slept": seconds}
