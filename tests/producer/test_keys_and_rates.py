"""The intake's key cache and rate buckets on their own: what they keep, for how long, and what
they count (the clock is a plain number the tests move)."""

from __future__ import annotations

import threading

import anyio
import pytest

from pqueue import InvalidInput, KeyRejected
from producer.rate_limits import RateLimited, SubmitRates
from producer.recent import Recent


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_rates__a_full_minute_at_once_then_the_rate() -> None:
    clock = Clock()
    rates = SubmitRates(clock)

    quotas = [rates.take("acme", 60, 1) for _ in range(60)]
    with pytest.raises(RateLimited) as over:
        rates.take("acme", 60, 1)

    assert quotas[0] is not None and quotas[0].headers() == {
        "RateLimit-Policy": '"submit";q=60;w=60',
        "RateLimit": '"submit";r=59;t=1',
    }
    assert quotas[-1] is not None and (quotas[-1].remaining, quotas[-1].reset_seconds) == (0, 60)
    assert over.value.retry_after == 1 and over.value.quota.headers()["RateLimit"] == '"submit";r=0;t=1'
    clock.now += 1.0
    assert rates.take("acme", 60, 1) is not None  # one job a second comes back
    with pytest.raises(RateLimited):
        rates.take("acme", 60, 1)
    assert rates.take("beta", 60, 60) is not None  # each partner has its own bucket


def test_rates__a_refusal_spends_nothing_and_says_when_the_jobs_fit() -> None:
    clock = Clock()
    rates = SubmitRates(clock)
    rates.take("acme", 6, 5)  # one left; one more every 10 s

    with pytest.raises(RateLimited) as over:
        rates.take("acme", 6, 3)

    assert over.value.retry_after == 20 and "these 3 jobs" in str(over.value)
    clock.now += 20
    quota = rates.take("acme", 6, 3)
    assert quota is not None and quota.remaining == 0


def test_rates__no_rate_no_limit_and_a_batch_over_the_rate_is_bad_input() -> None:
    rates = SubmitRates(Clock())

    assert all(rates.take("acme", None, 1000) is None for _ in range(100))
    with pytest.raises(InvalidInput, match="smaller batches"):
        rates.take("acme", 10, 11)


def test_rates__a_lower_rate_applies_at_once() -> None:
    rates = SubmitRates(Clock())
    rates.take("acme", 100, 1)

    quota = rates.take("acme", 5, 1)

    assert quota is not None and (quota.limit, quota.remaining) == (5, 4)


@pytest.mark.anyio
async def test_recent__concurrent_misses_share_one_lookup_kept_for_ttl() -> None:
    clock = Clock()
    recent: Recent[str] = Recent(1.0, clock=clock)
    calls: list[str] = []
    release = threading.Event()

    def lookup() -> str:
        calls.append("looked up")
        release.wait(10)
        return "acme"

    answers: list[str] = []

    async def ask() -> None:
        answers.append(await recent.get("key", lookup))

    async with anyio.create_task_group() as tasks:
        for _ in range(20):
            tasks.start_soon(ask)
        await anyio.sleep(0.05)
        release.set()
    assert answers == ["acme"] * 20 and len(calls) == 1

    clock.now += 0.9
    assert await recent.get("key", lookup) == "acme" and len(calls) == 1
    clock.now += 0.2
    assert await recent.get("key", lookup) == "acme" and len(calls) == 2


@pytest.mark.anyio
async def test_recent__remembers_refusals_but_not_other_errors() -> None:
    clock = Clock()
    recent: Recent[str] = Recent(1.0, remember=(KeyRejected,), clock=clock)
    calls: list[str] = []

    def refuse() -> str:
        calls.append("refused")
        raise KeyRejected("the key is not known here")

    def fail() -> str:
        calls.append("failed")
        raise OSError("database away")

    for _ in range(3):
        with pytest.raises(KeyRejected, match="not known"):
            await recent.get("bad", refuse)
        with pytest.raises(OSError):
            await recent.get("other", fail)
    assert calls.count("refused") == 1 and calls.count("failed") == 3
