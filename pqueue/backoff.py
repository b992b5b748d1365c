"""One rule for every wait before trying again: a crashed job's next attempt, a callback's next
delivery, a program's next connection to the database or the broker.

The n-th wait is base * 2**(n-1), never more than the cap; `jittered` adds up to a quarter more,
so jobs or deliveries failed by one outage do not all come back in the same second. The wait is
never shorter than the setting the operator gave (`--backoff 5` waits at least 5 s).
"""

from __future__ import annotations

import random

MAX_SECONDS = 3600.0  # no wait is longer than an hour, whatever the attempt
JITTER = 0.25  # a jittered wait is up to this share longer than the plain one
_MAX_DOUBLINGS = 64  # 2**64 times any base is past every cap; keeps the arithmetic finite


def exponential(base: float, attempt: int, cap: float = MAX_SECONDS) -> float:
    """The plain wait before try `attempt` + 1: base, 2 base, 4 base, … up to `cap`."""
    if base <= 0:
        return 0.0
    doublings = min(_MAX_DOUBLINGS, max(0, attempt - 1))
    return float(min(cap, base * 2.0**doublings))


def jittered(base: float, attempt: int, cap: float = MAX_SECONDS) -> float:
    """The plain wait and up to a quarter more, never past `cap`."""
    return min(cap, exponential(base, attempt, cap) * random.uniform(1.0, 1.0 + JITTER))
