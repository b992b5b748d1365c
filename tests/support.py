"""Helpers for tests: polling with a deadline, free ports, a job's status, a SQLite copy, whether
this is CI. Programs are started through tests/programs.py."""

from __future__ import annotations

import os
import socket
import sqlite3
import sys
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import TypeVar

import pytest

from pqueue import PersistentQ, Status

T = TypeVar("T")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

# The tests that race several processes of their own for the CPU (spawned, each importing
# pqueue) run one after another on one test worker. Side by side on two cores they slowed each
# other tenfold (the 2,000-job race took 330 s beside its siblings, 30 s alone), and the
# wake-up test measures milliseconds. What each checks is unchanged.
RACES = pytest.mark.xdist_group("races")


def wait_until(predicate: Callable[[], T | None], timeout: float = 30.0, interval: float = 0.02, what: str = "") -> T:
    """Poll until predicate returns something truthy; fail the test at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(interval)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_status(store: PersistentQ, job_id: int, *statuses: Status, timeout: float = 30.0) -> Status:
    """Wait until the job is in one of the statuses; return it."""

    def reached() -> Status | None:
        status = store.get_job(job_id).status
        return status if status in statuses else None

    return wait_until(reached, timeout=timeout, what=f"job {job_id} to be {' or '.join(statuses)}")


def copy_sqlite(source: Path, target: Path) -> None:
    """A consistent copy of a SQLite database, through SQLite's own backup (WAL pages included)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with closing(sqlite3.connect(source)) as reading, closing(sqlite3.connect(target)) as writing:
        reading.backup(writing)
