"""Stopping a program's processes (SIGSTOP) at a moment that is safe for the test."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import time


def stop_outside_a_write(pids: list[int], db_env: dict[str, str]) -> None:
    """SIGSTOP the processes at a moment when none of them holds SQLite's write lock.

    A process stopped inside a write transaction keeps the lock of the whole file until it
    resumes or dies (SQLite cannot take a lock from its holder): every other writer waits, and
    no successor can start. That is docs/architecture.md's known limit; these tests stop the
    consumer between its writes. (PostgreSQL ends such a session by itself.)
    """
    url = db_env["PQ_DATABASE_URL"]
    for _ in range(100):
        signal_all(pids, signal.SIGSTOP)
        if not url.startswith("sqlite") or not _write_locked(url.removeprefix("sqlite:///")):
            return
        signal_all(pids, signal.SIGCONT)
        time.sleep(0.05)
    raise AssertionError("the consumer held the write lock at every try")


def signal_all(pids: list[int], signum: int) -> None:
    """Signal each process; one that has just exited (a spare job process retired) is no error."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)


def _write_locked(path: str) -> bool:
    connection = sqlite3.connect(path, timeout=0.2, isolation_level=None)
    try:
        connection.execute("BEGIN IMMEDIATE")
        connection.execute("ROLLBACK")
    except sqlite3.OperationalError:
        return True
    finally:
        connection.close()
    return False
