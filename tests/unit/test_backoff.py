"""pqueue/backoff.py: the one wait rule of job retries, callback deliveries and reconnects."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pqueue import backoff


def test_exponential__doubles_from_the_base_up_to_the_cap() -> None:
    assert [backoff.exponential(10, n) for n in range(1, 6)] == [10, 20, 40, 80, 160]
    assert backoff.exponential(10, 40) == backoff.MAX_SECONDS
    assert backoff.exponential(0.5, 10, cap=30) == 30
    assert backoff.exponential(0, 3) == 0 and backoff.exponential(-1, 3) == 0


@given(
    base=st.floats(min_value=0, max_value=1e6, allow_nan=False),
    attempt=st.integers(min_value=0, max_value=10_000),
    cap=st.floats(min_value=0.001, max_value=1e7, allow_nan=False),
)
def test_jittered__never_shorter_than_the_plain_wait_never_past_the_cap(base: float, attempt: int, cap: float) -> None:
    plain = backoff.exponential(base, attempt, cap)
    wait = backoff.jittered(base, attempt, cap)
    assert plain <= wait <= min(cap, plain * (1 + backoff.JITTER))
