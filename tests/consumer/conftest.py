"""Fixtures for the consumer's tests: start real `pq-consumer` processes against the test database."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pqueue import PersistentQ, Status
from tests.support import BIN, pid_alive, stop, wait_until

# Short leases keep the crash tests quick: renew every ~0.67s, margin 0.5s, rescue after ~2.5s.
BASE_ENV = {
    "PQ_LEASE_SECONDS": "2",
    "PQ_ALGORITHM": "tests.consumer.algos:act",
    "PQ_RETRY_BACKOFF_SECONDS": "0",
    "PQ_LOG_LEVEL": "INFO",
    # PQ_TEST_CLAIM_AHEAD=1 runs the suite with the consumer claiming ahead (PQ_CLAIM_AHEAD).
    "PQ_CLAIM_AHEAD": os.environ.get("PQ_TEST_CLAIM_AHEAD", "0"),
}

StartConsumer = Callable[..., subprocess.Popen[bytes]]


@pytest.fixture
def start_consumer(db_env: dict[str, str], tmp_path: Path) -> Iterator[StartConsumer]:
    """Start `pq-consumer` with the test database and overrides: start_consumer(PQ_JOB_TIMEOUT="1").

    Every consumer started is stopped (its whole group killed) afterwards, and its log printed,
    which pytest shows when the test failed.
    """
    from tests.support import start

    started: list[tuple[subprocess.Popen[bytes], Path]] = []

    def launch(*args: str, **overrides: str) -> subprocess.Popen[bytes]:
        log_path = tmp_path / f"consumer-{len(started)}.log"
        env = {**db_env, **BASE_ENV, **overrides}
        process = start([str(BIN / "pq-consumer"), *args], env, log_path)
        started.append((process, log_path))
        return process

    yield launch
    for process, log_path in started:
        stop_now(process)
        print(f"--- {log_path.name} (exit {process.returncode}) ---")
        print(log_path.read_text(errors="replace") if log_path.exists() else "(no log)")


def stop_now(process: subprocess.Popen[bytes]) -> None:
    """Stop a consumer without waiting for its grace period: a second SIGTERM stops it at once."""
    for _ in range(2):
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(0.5)
    stop(process)


def wait_status(store: PersistentQ, job_id: int, *statuses: Status, timeout: float = 30.0) -> Status:
    """Wait until the job is in one of the statuses; return it."""

    def reached() -> Status | None:
        status = store.get_job(job_id).status
        return status if status in statuses else None

    return wait_until(reached, timeout=timeout, what=f"job {job_id} to be {' or '.join(statuses)}")


def wait_gone(pid: int, timeout: float = 10.0) -> None:
    """Wait until the process no longer runs."""
    wait_until(lambda: not pid_alive(pid), timeout=timeout, what=f"process {pid} to be gone")


def wait_exit(process: subprocess.Popen[bytes], timeout: float = 30.0) -> int:
    """Wait for a started consumer to exit by itself; its exit code."""
    return process.wait(timeout)


def kill_hard(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL the consumer process alone (not its group): what a crash or the OOM killer does."""
    os.kill(process.pid, signal.SIGKILL)
    process.wait(10)
