"""The liveness verdict from the worker registry and the running jobs' leases."""

from __future__ import annotations

from datetime import UTC, datetime

from ops_dashboard.liveness import liveness
from pqueue import RunningJob, Worker

NOW = datetime(2026, 1, 1, tzinfo=UTC)
LEASE = 30.0


def worker(seen_ago: float, name: str = "c1", job: int | None = None) -> Worker:
    return Worker(name, "consumer", "host", 1, "default", NOW, NOW, seen_ago, job)


def running(remaining: float, worker_id: str = "c1", job_id: int = 7) -> RunningJob:
    return RunningJob(job_id, "default", worker_id, NOW, 100.0, NOW, remaining, 1)


def test_liveness__idle_consumer_seen_recently_is_green() -> None:
    verdict = liveness([worker(3)], [], LEASE)
    assert (verdict.healthy, verdict.value, verdict.detail) == (True, "1 alive", "seen 3s ago")


def test_liveness__no_worker_registered_is_red() -> None:
    verdict = liveness([], [], LEASE)
    assert (verdict.healthy, verdict.value) == (False, "none")


def test_liveness__worker_silent_too_long_is_red() -> None:
    verdict = liveness([worker(2 * LEASE + 1)], [], LEASE)
    assert (verdict.healthy, verdict.detail) == (False, "last seen 1m 1s ago")


def test_liveness__busy_worker_with_renewed_lease_is_green() -> None:
    # A consumer running a long job renews the lease without touching the registry.
    verdict = liveness([worker(600, job=7)], [running(25)], LEASE)
    assert verdict.healthy


def test_liveness__lease_about_to_end_is_red() -> None:
    verdict = liveness([worker(1, job=7)], [running(2)], LEASE)
    assert (verdict.healthy, verdict.value, verdict.detail) == (False, "at risk", "job 7: lease ends in 2s")


def test_liveness__expired_lease_is_red() -> None:
    verdict = liveness([worker(1, job=7)], [running(-4)], LEASE)
    assert (verdict.healthy, verdict.detail) == (False, "job 7: lease expired")
