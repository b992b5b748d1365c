"""wait_for_work on each backend: LISTEN/NOTIFY on PostgreSQL; on SQLite, inotify (Linux) or polling of data_version."""

from __future__ import annotations

import logging
import math
import os
import select
import sqlite3
import sys
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine

log = logging.getLogger("pqueue.waiting")

if sys.platform.startswith("linux"):  # the dependency is installed on Linux only
    from inotify_simple import INotify
    from inotify_simple import flags as inotify_flags


# (a claim could succeed now, seconds until the next delayed job is due)
ReadyCheck = Callable[[], tuple[bool, float | None]]


class Woken(Exception):
    """The caller's wake-up descriptor became readable while the waiter blocked: the wait ends."""


def _sleep(seconds: float, wake: int | None) -> None:
    """Sleep, or raise Woken as soon as `wake` (when given) is readable."""
    if wake is None:
        time.sleep(seconds)
    elif select.select([wake], [], [], max(0.0, seconds))[0]:
        raise Woken


class Waiter:
    """Blocks until the database changed in a way that may make work claimable."""

    QUIET = 0.1  # seconds without a change after which the next change is taken at its word
    _last_wake = -math.inf
    _lone = False  # the last wake-up was a change after a quiet spell

    def wait(self, timeout: float, ready: ReadyCheck, wake: int | None = None) -> bool:
        """Return True as soon as a claim could succeed, False after the timeout, or at once
        (False) when the descriptor `wake` becomes readable (a program asked to stop).

        Every change wakes the waiter, but it returns only when the read-only ready check
        says a job is due and a seat is free: idle consumers of a busy single-seat queue must
        not queue up for the write lock just to find the seat taken. But a change after QUIET
        seconds without one (a job put into a quiet system) returns at once: the claim itself
        is the check, and the job starts one check sooner; a claim that finds nothing costs
        one short transaction, and changes that come faster (a busy queue) are checked first.
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
            try:
                changed = self._block_until(wake_at, wake)
            except Woken:
                return False
            if changed and self._wake_is_work():
                return True
            if not changed and wake_at >= deadline:
                return False

    def _arm(self) -> None:
        """Start noticing changes (before the ready check, so none is missed in between)."""

    def _block_until(self, deadline: float, wake: int | None) -> bool:
        """Block until a change (True) or the deadline (False); raise Woken when `wake` is readable."""
        raise NotImplementedError

    def _woken(self) -> None:
        """Note a change seen while blocked (a subclass calls this)."""
        now = time.monotonic()
        self._lone = now - self._last_wake >= self.QUIET
        self._last_wake = now

    def _wake_is_work(self) -> bool:
        """True when the last wake-up is worth a claim without the ready check."""
        lone, self._lone = self._lone, False
        return lone

    def close(self) -> None:
        """Release what the waiter holds."""


class SQLiteWaiter(Waiter):
    """Watches `PRAGMA data_version`, which changes when any other connection commits.

    On Linux, inotify on the database's directory says when the database or its WAL file is
    written, so an idle consumer wakes at once without polling. A commit's pages reach the WAL
    before the commit becomes visible (after the WAL's fsync), so after such a write the
    change counter is polled briefly and quickly. A slow safety poll covers a filesystem that
    sends no events. Elsewhere (or without inotify) the change counter is polled: every
    FAST_POLL while work flows, every SLOW_POLL after FAST_FOR idle seconds. The counter lives
    in shared memory: reading it takes no lock and no I/O.
    """

    FAST_POLL = 0.002
    SLOW_POLL = 0.02
    FAST_FOR = 5.0  # seconds after a change during which polling stays fast (without inotify)
    SAFETY_POLL = 0.05  # with inotify: the longest a change can go unseen if no event came
    HOT_POLL = 0.0001  # first pause after a write; doubles up to FAST_POLL
    HOT_FOR = 0.1  # seconds after a write during which the counter is polled (its commit may follow)

    def __init__(self, path: str) -> None:
        self._path = path
        self._conn: sqlite3.Connection | None = None
        self._version = -1
        self._last_change = time.monotonic()
        self._events: FileEvents | None = None
        self._events_tried = False

    def _data_version(self) -> int:
        if self._conn is None:
            self._conn = sqlite3.connect(self._path, check_same_thread=False)
        value: int = self._conn.execute("PRAGMA data_version").fetchone()[0]
        return value

    def _arm(self) -> None:
        if not self._events_tried:  # before the first reading, so no write after it is missed
            self._events_tried = True
            self._events = FileEvents.for_database(self._path)
        self._version = self._data_version()

    def _changed(self) -> bool:
        if self._data_version() == self._version:
            return False
        self._last_change = time.monotonic()
        self._woken()
        return True

    def _block_until(self, deadline: float, wake: int | None) -> bool:
        if self._events is None:
            return self._poll_until(deadline, wake)
        return self._watch_until(self._events, deadline, wake)

    def _watch_until(self, events: FileEvents, deadline: float, wake: int | None) -> bool:
        hot_until, pause = 0.0, self.HOT_POLL
        while True:
            now = time.monotonic()
            if now >= deadline:
                return False
            if now < hot_until:  # a write was seen: its commit becomes visible any moment
                written = events.wait(min(pause, deadline - now), wake)
                pause = min(pause * 2, self.FAST_POLL)
            else:
                written = events.wait(min(self.SAFETY_POLL, deadline - now), wake)
            if written:
                hot_until, pause = time.monotonic() + self.HOT_FOR, self.HOT_POLL
            if self._changed():
                return True

    def _poll_until(self, deadline: float, wake: int | None) -> bool:
        while True:
            now = time.monotonic()
            if now >= deadline:
                return False
            idle = now - self._last_change > self.FAST_FOR
            _sleep(min(self.SLOW_POLL if idle else self.FAST_POLL, deadline - now), wake)
            if self._changed():
                return True

    def close(self) -> None:
        if self._events is not None:
            self._events.close()
            self._events = None
        self._events_tried = False
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class FileEvents:
    """inotify on a directory, reporting writes to a few of its files (Linux only).

    The directory is watched rather than the files, so a WAL file created later is seen too.
    """

    def __init__(self, directory: str, names: set[str]) -> None:
        self._inotify = INotify(nonblocking=True)
        try:
            self._inotify.add_watch(directory, inotify_flags.MODIFY | inotify_flags.CREATE | inotify_flags.MOVED_TO)
        except OSError:
            self._inotify.close()
            raise
        self._names = names
        # An overflowed queue or a dropped watch may hide a write: count it as one.
        self._lost = inotify_flags.Q_OVERFLOW | inotify_flags.IGNORED

    @classmethod
    def for_database(cls, path: str) -> FileEvents | None:
        """Events for a SQLite file, its WAL and its rollback journal; None where inotify is missing."""
        if not sys.platform.startswith("linux"):
            return None
        path = os.path.abspath(path)
        base = os.path.basename(path)
        try:
            return cls(os.path.dirname(path), {base, f"{base}-wal", f"{base}-journal"})
        except OSError as exc:
            log.info("no inotify for %s (%s); polling its change counter", path, exc)
            return None

    def wait(self, timeout: float, wake: int | None = None) -> bool:
        """True when one of the files was written (since the last call), waiting up to timeout;
        Woken when `wake` (when given) became readable first."""
        # select() rather than read(timeout=…): the waits here are fractions of a millisecond.
        watched = [self._inotify.fileno()] if wake is None else [self._inotify.fileno(), wake]
        readable, _, _ = select.select(watched, [], [], max(0.0, timeout))
        if not readable:
            return False
        if wake is not None and wake in readable:
            raise Woken
        return any(e.name in self._names or e.mask & self._lost for e in self._inotify.read(timeout=0))

    def close(self) -> None:
        """Stop watching."""
        self._inotify.close()


class PostgresWaiter(Waiter):
    """LISTENs on a dedicated connection (a pooled one would drop the LISTEN with its session).

    Every outcome and every put sends a notification: a stream of them means a busy queue,
    whose idle consumers go through the ready check rather than take the seat lock again and
    again (see Waiter.wait).
    """

    FALLBACK_POLL = 1.0  # a missed notification costs at most this much
    LOG_EVERY = 10.0  # while the LISTEN connection stays lost, one log line per this many seconds

    def __init__(self, connect_args: dict[str, Any], channel: str) -> None:
        self._connect_args = connect_args
        self._channel = channel
        self._conn: Any = None
        self._lost_since: float | None = None  # monotonic; None while listening
        self._logged_at = -math.inf
        self._retry_at = -math.inf  # no new connection before this: a dead host costs a connect timeout

    def _arm(self) -> None:
        try:
            if self._conn is None:
                if time.monotonic() < self._retry_at:
                    return
                import psycopg

                self._conn = psycopg.connect(**{"connect_timeout": 5, **self._connect_args, "autocommit": True})
                self._conn.execute(f'LISTEN "{self._channel}"')
                if self._lost_since is not None:
                    log.info("LISTEN connection back after %.1fs", time.monotonic() - self._lost_since)
                    self._lost_since, self._logged_at = None, -math.inf
            # Drop notifications that arrived before this wait; the ready check covers them.
            for _ in self._conn.notifies(timeout=0):
                self._last_wake = time.monotonic()  # they still say the database is busy
        except Exception as exc:  # noqa: BLE001 - any failure means: fall back to polling
            self._lost(exc)

    def _block_until(self, deadline: float, wake: int | None) -> bool:
        remaining = max(0.0, deadline - time.monotonic())
        if self._conn is None:
            _sleep(min(remaining, self.FALLBACK_POLL), wake)
            return remaining > self.FALLBACK_POLL
        try:
            listen = min(remaining, self.FALLBACK_POLL)
            if wake is not None:  # the socket and `wake` together; then the notification, if one came
                readable = select.select([self._conn.fileno(), wake], [], [], listen)[0]
                if wake in readable:
                    raise Woken
                if not readable:
                    return remaining > self.FALLBACK_POLL
                listen = min(listen, 0.05)  # the socket has something: a notification, or nothing to wait for
            for _ in self._conn.notifies(timeout=listen, stop_after=1):
                self._woken()
                return True
        except Woken:
            raise  # the caller's stop, not a lost connection
        except Exception as exc:  # noqa: BLE001
            self._lost(exc)
        return remaining > self.FALLBACK_POLL

    def _lost(self, exc: Exception) -> None:
        """Poll until the LISTEN connection is back; say so once, then every LOG_EVERY seconds."""
        self.close()
        now = time.monotonic()
        self._retry_at = now + self.FALLBACK_POLL
        if self._lost_since is None:
            self._lost_since = now
        if now - self._logged_at >= self.LOG_EVERY:
            self._logged_at = now
            message = " ".join(str(exc).split())  # the driver's whole message, on one line
            log.warning("LISTEN connection lost (%s: %s); polling until it is back", type(exc).__name__, message)

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
    # The pool's own connection arguments, from the dialect: every host of a multi-host URL with
    # its port, target_session_attrs (so the LISTEN reaches the primary), keepalives, password.
    args, connect_args = engine.dialect.create_connect_args(url)
    assert not any(args), args  # the psycopg dialect passes everything by keyword
    return PostgresWaiter(dict(connect_args), channel)
