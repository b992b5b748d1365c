"""wait_for_work on each backend: LISTEN/NOTIFY on PostgreSQL, data_version polling on SQLite."""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine

log = logging.getLogger("pqueue.waiting")

# (a claim could succeed now, seconds until the next delayed job is due)
ReadyCheck = Callable[[], tuple[bool, float | None]]


class Waiter:
    """Blocks until the database changed in a way that may make work claimable."""

    def wait(self, timeout: float, ready: ReadyCheck) -> bool:
        """Return True as soon as a claim could succeed, False after the timeout.

        Every change wakes the waiter, but it returns only when the read-only ready check
        says a job is due and a seat is free: idle consumers of a busy single-seat queue must
        not queue up for the write lock just to find the seat taken.
        """
        deadline = time.monotonic() + timeout
        while True:
            self._arm()
            is_ready, due_in = ready()
            if is_ready:
                return True
            wake_at = deadline
            if due_in is not None:
                wake_at = min(deadline, time.monotonic() + max(0.0, due_in))
            changed = self._block_until(wake_at)
            if not changed and wake_at >= deadline:
                return False

    def _arm(self) -> None:
        """Start noticing changes (before the ready check, so none is missed in between)."""

    def _block_until(self, deadline: float) -> bool:
        raise NotImplementedError

    def close(self) -> None:
        """Release what the waiter holds."""


class SQLiteWaiter(Waiter):
    """Polls `PRAGMA data_version`, which changes when any other connection commits.

    The check reads shared memory only (no lock, no I/O), so it can run every few milliseconds:
    an idle consumer starts a new job within about one poll interval of its commit.
    """

    FAST_POLL = 0.002
    SLOW_POLL = 0.02
    FAST_FOR = 5.0  # seconds after a change during which polling stays fast

    def __init__(self, path: str) -> None:
        self._path = path
        self._conn: sqlite3.Connection | None = None
        self._version = -1
        self._last_change = time.monotonic()

    def _data_version(self) -> int:
        if self._conn is None:
            self._conn = sqlite3.connect(self._path, check_same_thread=False)
        value: int = self._conn.execute("PRAGMA data_version").fetchone()[0]
        return value

    def _arm(self) -> None:
        self._version = self._data_version()

    def _block_until(self, deadline: float) -> bool:
        while True:
            now = time.monotonic()
            if now >= deadline:
                return False
            idle = now - self._last_change > self.FAST_FOR
            time.sleep(min(self.SLOW_POLL if idle else self.FAST_POLL, deadline - now))
            if self._data_version() != self._version:
                self._last_change = time.monotonic()
                return True

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class PostgresWaiter(Waiter):
    """LISTENs on a dedicated connection (a pooled one would drop the LISTEN with its session)."""

    FALLBACK_POLL = 1.0  # a missed notification costs at most this much

    def __init__(self, conninfo: str, channel: str) -> None:
        self._conninfo = conninfo
        self._channel = channel
        self._conn: Any = None

    def _arm(self) -> None:
        try:
            if self._conn is None:
                import psycopg

                self._conn = psycopg.connect(self._conninfo, autocommit=True, connect_timeout=5)
                self._conn.execute(f'LISTEN "{self._channel}"')
            # Drop notifications that arrived before this wait; the ready check covers them.
            for _ in self._conn.notifies(timeout=0):
                pass
        except Exception as exc:  # noqa: BLE001 - any failure means: fall back to polling
            log.warning("LISTEN connection lost (%s); polling until it is back", exc)
            self.close()

    def _block_until(self, deadline: float) -> bool:
        remaining = max(0.0, deadline - time.monotonic())
        if self._conn is None:
            time.sleep(min(remaining, self.FALLBACK_POLL))
            return remaining > self.FALLBACK_POLL
        try:
            for _ in self._conn.notifies(timeout=min(remaining, self.FALLBACK_POLL), stop_after=1):
                return True
        except Exception as exc:  # noqa: BLE001
            log.warning("LISTEN connection lost (%s); polling until it is back", exc)
            self.close()
        return remaining > self.FALLBACK_POLL

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None


def make_waiter(engine: Engine, channel: str) -> Waiter:
    """The waiter for the engine's database."""
    url = engine.url
    if url.get_backend_name() == "sqlite":
        return SQLiteWaiter(str(url.database))
    conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
    return PostgresWaiter(conninfo, channel)
