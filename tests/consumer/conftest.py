"""Fixtures for the consumer's tests: start real `pq-consumer` processes against the test database."""

from __future__ import annotations

import pytest

from tests.programs import CLAIM_AHEAD_ENV, Process, Programs, StartConsumer

# Short leases keep the crash tests quick: renew every ~0.67s, margin 0.5s, rescue after ~2.5s.
BASE_ENV = {
    "PQ_LEASE_SECONDS": "2",
    "PQ_ALGORITHM": "tests.consumer.algos:act",
    "PQ_RETRY_BACKOFF_SECONDS": "0",
    "PQ_LOG_LEVEL": "INFO",
    **CLAIM_AHEAD_ENV,
}


@pytest.fixture
def start_consumer(db_env: dict[str, str], programs: Programs) -> StartConsumer:
    """Start `pq-consumer` with the test database and overrides: start_consumer(PQ_JOB_TIMEOUT="1").
    The n-th consumer (from 0) logs to consumer-<n>.log."""
    count = 0

    def launch(*args: str, **overrides: str) -> Process:
        nonlocal count
        log = f"consumer-{count}.log"
        count += 1
        return programs.start("pq-consumer", *args, env={**db_env, **BASE_ENV, **overrides}, log=log)

    return launch
