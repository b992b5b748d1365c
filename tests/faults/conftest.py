"""The fault suite's fixtures: real pqueue programs that carry a marker, and the orphan check.

Every program a fault test starts gets PQ_TEST_FAULT_RUN=<unique id> in its environment, which
its helper and job processes inherit. After the test, no process with that marker may be left:
whatever the fault was, nothing of ours survives to hold the licence (an orphan fails the test,
and is killed).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support import BIN, start, stop, wait_until

MARKER = "PQ_TEST_FAULT_RUN"

# Short leases keep the tests quick: renewals every ~1.3 s, margin 1 s, rescue after ~5 s.
LEASE_SECONDS = 4
BASE_ENV = {
    "PQ_LEASE_SECONDS": str(LEASE_SECONDS),
    "PQ_ALGORITHM": "tests.faults.ledger:run",
    "PQ_RETRY_BACKOFF_SECONDS": "0",
    "PQ_LOG_LEVEL": "INFO",
    # PQ_TEST_CLAIM_AHEAD=1 runs the suite with the consumer claiming ahead (PQ_CLAIM_AHEAD).
    "PQ_CLAIM_AHEAD": os.environ.get("PQ_TEST_CLAIM_AHEAD", "0"),
}

StartProgram = Callable[..., subprocess.Popen[bytes]]


def marked_processes(marker: str) -> list[int]:
    """Pids of the live processes whose environment carries this run's marker."""
    needle = f"{MARKER}={marker}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if needle in (entry / "environ").read_bytes().split(b"\0") and not _zombie(entry):
                found.append(int(entry.name))
        except OSError:  # gone meanwhile, or not ours to read
            continue
    return found


def _zombie(entry: Path) -> bool:
    stat = (entry / "stat").read_text()
    return stat[stat.rindex(")") + 2] == "Z"


@pytest.fixture
def run_marker() -> str:
    return uuid.uuid4().hex


@pytest.fixture
def start_program(db_env: dict[str, str], tmp_path: Path, run_marker: str) -> Iterator[StartProgram]:
    """Start a console script (pq-consumer, pq-producer, …) on the test database with overrides:
    start_program("pq-consumer", PQ_JOB_TIMEOUT="1"), inside a network namespace with netns=….
    Each gets its own log, printed afterwards."""
    started: list[tuple[subprocess.Popen[bytes], Path]] = []

    def launch(program: str, *args: str, netns: str | None = None, **overrides: str) -> subprocess.Popen[bytes]:
        log_path = tmp_path / f"{program}-{len(started)}.log"
        env = {**db_env, **BASE_ENV, MARKER: run_marker, **overrides}
        inside = ["ip", "netns", "exec", netns] if netns else []  # execs the program: same pid
        process = start([*inside, str(BIN / program), *args], env, log_path)
        started.append((process, log_path))
        return process

    yield launch
    for process, log_path in started:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGCONT)  # a test that failed while it was stopped
        stop(process, timeout=5)
        print(f"--- {log_path.name} (exit {process.returncode}) ---")
        print(log_path.read_text(errors="replace")[-20_000:] if log_path.exists() else "(no log)")
    left = _kill_orphans(run_marker)
    assert not left, f"processes of this test outlived it: {left}"


def _kill_orphans(marker: str) -> list[int]:
    """Wait a little for the marked processes to go; SIGKILL and return those that did not."""
    with contextlib.suppress(AssertionError):
        wait_until(lambda: not marked_processes(marker), timeout=10, what="the test's processes to exit")
    left = marked_processes(marker)
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)
            os.kill(pid, signal.SIGKILL)
    return left
