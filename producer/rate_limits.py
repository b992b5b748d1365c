"""Each partner's submissions per minute (`pq partner set NAME --rate N`): a token bucket per partner.

A partner's bucket holds up to N jobs and refills at N per minute, so a partner may send a
minute's worth at once and then keeps to its rate. Every job costs one (a batch one per job,
repeated idempotency keys included); a request over the rate stores nothing and is answered 429
with Retry-After and the IETF draft's headers (draft-ietf-httpapi-ratelimit-headers):

    RateLimit-Policy: "submit";q=N;w=60     the policy: N jobs per 60 seconds
    RateLimit: "submit";r=R;t=T             R jobs may be sent now; the bucket is full again in T s

Successful submissions of a partner with a rate carry the same two headers.

The buckets live in this intake process's memory: no database write per request, and the limit
holds exactly for the one intake a deployment runs. Several intake processes would each allow
the full rate (documented in docs/producer.md).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from pqueue import InvalidInput, PQError

WINDOW_SECONDS = 60
POLICY = "submit"


@dataclass(frozen=True)
class Quota:
    """Where a partner's bucket stands, as the RateLimit headers say it."""

    limit: int  # jobs per window
    remaining: int  # jobs that may be sent now
    reset_seconds: int  # until the bucket is full again

    def headers(self) -> dict[str, str]:
        return {
            "RateLimit-Policy": f'"{POLICY}";q={self.limit};w={WINDOW_SECONDS}',
            "RateLimit": f'"{POLICY}";r={self.remaining};t={self.reset_seconds}',
        }


class RateLimited(PQError):
    """The partner sent more than its rate allows; nothing was stored."""

    def __init__(self, partner: str, jobs: int, quota: Quota, retry_after: int) -> None:
        self.quota = quota
        self.retry_after = retry_after
        what = "this job" if jobs == 1 else f"these {jobs} jobs"
        super().__init__(
            f"partner {partner!r} may submit {quota.limit} jobs a minute and is over that rate; "
            f"nothing was stored; send {what} again in {retry_after} s"
        )


@dataclass
class _Bucket:
    tokens: float
    at: float


class SubmitRates:
    """The token buckets of every partner with a rate, in this process (thread-safe)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()  # held for microseconds: the event loop takes it too

    def take(self, partner: str, rate_per_minute: int | None, jobs: int) -> Quota | None:
        """Spend `jobs` of the partner's bucket and say where it stands (None: no rate set);
        RateLimited, spending nothing, when it holds fewer; InvalidInput for more than it can hold."""
        if rate_per_minute is None:
            return None
        if jobs > rate_per_minute:
            raise InvalidInput(
                "jobs",
                f"{jobs} jobs at once are more than partner {partner!r} may submit in a minute "
                f"({rate_per_minute}); send them in smaller batches",
            )
        per_second = rate_per_minute / WINDOW_SECONDS
        with self._lock:
            now = self.clock()
            bucket = self._buckets.setdefault(partner, _Bucket(float(rate_per_minute), now))
            bucket.tokens = min(float(rate_per_minute), bucket.tokens + (now - bucket.at) * per_second)
            bucket.at = now
            if bucket.tokens < jobs:
                retry_after = max(1, math.ceil((jobs - bucket.tokens) / per_second))
                quota = Quota(rate_per_minute, math.floor(bucket.tokens), retry_after)
                raise RateLimited(partner, jobs, quota, retry_after)
            bucket.tokens -= jobs
            full_in = math.ceil((rate_per_minute - bucket.tokens) / per_second)
            return Quota(rate_per_minute, math.floor(bucket.tokens), full_in)
