"""The waiters: SQLite woken by another connection's commit (inotify or polling); PostgreSQL by NOTIFY."""

from __future__ import annotations

import os
import sqlite3
import sys
import threading
import time
import uuid
from contextlib import closing
from pathlib import Path

import pytest
from sqlalchemy import make_url

from pqueue.waiting import FileEvents, PostgresWaiter, SQLiteWaiter, Waiter
from tests.postgres import require_postgres

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def database(tmp_path: Path) -> Path:
    path = tmp_path / "q.db"
    # closing(): sqlite3's `with` only commits, and the last connection's close checkpoints the
    # WAL into the database file: left to the garbage collector it could write during a test.
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("CREATE TABLE t (a INTEGER)")
    return path


def commit_row(path: Path) -> None:
    """Another connection commits one row (and is closed, so no later close writes the file)."""
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("INSERT INTO t VALUES (1)")


def commit_later(path: Path, delay: float) -> threading.Timer:
    """Another connection commits one row after `delay` seconds."""
    timer = threading.Timer(delay, commit_row, args=(path,))
    timer.start()
    return timer


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inotify is Linux only")
def test_file_events__report_the_database_and_its_wal_but_not_other_files(database: Path) -> None:
    events = FileEvents.for_database(str(database))
    assert events is not None
    try:
        (database.parent / "unrelated.log").write_text("x")
        assert not events.wait(0.05)
        commit_row(database)
        assert events.wait(1.0)
        assert not events.wait(0.0)  # drained
    finally:
        events.close()


@pytest.mark.parametrize("inotify", [True, False], ids=["inotify", "polling"])
@pytest.mark.parametrize("quiet", [True, False], ids=["lone change", "busy"])
def test_sqlite_waiter__wakes_for_another_connections_commit(database: Path, inotify: bool, quiet: bool) -> None:
    waiter = SQLiteWaiter(str(database))
    if not inotify:
        waiter._events_tried = True  # as where inotify is missing: the change counter is polled
    if not quiet:
        waiter.QUIET = 60.0  # every change counts as part of a busy stream: the ready check decides
    checks: list[int] = []

    def ready() -> tuple[bool, float | None]:
        with closing(sqlite3.connect(database)) as conn, conn:
            checks.append(conn.execute("SELECT count(*) FROM t").fetchone()[0])
        return checks[-1] > 0, None

    try:
        assert not waiter.wait(0.1, ready)
        waiter._last_wake = -60.0 if quiet else time.monotonic()
        checks.clear()
        timer = commit_later(database, 0.2)
        assert waiter.wait(10.0, ready)
        timer.join()
        # A lone change is taken at its word; in a busy stream the ready check saw the row.
        assert checks == ([0] if quiet else [0, 1])
        assert (waiter._events is not None) == (inotify and sys.platform.startswith("linux"))
    finally:
        waiter.close()


def test_postgres_waiter__a_lone_notification_is_work_a_busy_stream_is_checked() -> None:
    import psycopg

    conninfo = make_url(require_postgres()).set(drivername="postgresql").render_as_string(hide_password=False)
    channel = f"pq_test_{uuid.uuid4().hex[:12]}"
    waiter = PostgresWaiter({"conninfo": conninfo}, channel)
    checks: list[float] = []

    def never_ready() -> tuple[bool, float | None]:
        checks.append(time.monotonic())
        return False, None

    def notify_later(delay: float) -> threading.Timer:
        def send() -> None:
            with psycopg.connect(conninfo, autocommit=True) as conn:
                conn.execute("SELECT pg_notify(%s, 'default')", (channel,))

        timer = threading.Timer(delay, send)
        timer.start()
        return timer

    try:
        assert not waiter.wait(0.05, never_ready)  # connects and listens
        time.sleep(PostgresWaiter.QUIET)
        timer = notify_later(0.1)
        assert waiter.wait(5.0, never_ready)  # after a quiet spell: claim without asking
        timer.join()
        checks.clear()
        waiter.QUIET = 60.0  # so the next one surely counts as straight after (a loaded machine is slow)
        timer = notify_later(0.02)  # a second one straight after: the ready check decides
        assert not waiter.wait(0.5, never_ready)
        timer.join()
        assert len(checks) >= 2  # once on entry, once more for the notification
    finally:
        waiter.close()


def wake_later(delay: float) -> tuple[int, threading.Timer]:
    """A pipe's read end, written once after `delay` seconds (a SIGTERM handler's self-pipe)."""
    read, write = os.pipe()
    timer = threading.Timer(delay, os.write, (write, b"!"))
    timer.start()
    return read, timer


def never_ready() -> tuple[bool, float | None]:
    return False, None


@pytest.mark.parametrize("waiter_kind", ["inotify", "polling", "postgres"])
def test_waiters__a_readable_wake_descriptor_ends_the_wait_at_once(database: Path, waiter_kind: str) -> None:
    waiter: Waiter
    if waiter_kind == "postgres":
        conninfo = make_url(require_postgres()).set(drivername="postgresql").render_as_string(hide_password=False)
        waiter = PostgresWaiter({"conninfo": conninfo}, f"pq_test_{uuid.uuid4().hex[:12]}")
    else:
        waiter = SQLiteWaiter(str(database))
        waiter._events_tried = waiter_kind == "polling"  # as where inotify is missing
    read, timer = wake_later(0.2)
    try:
        assert not waiter.wait(0.05, never_ready, read)  # nothing written yet: the whole timeout
        started = time.monotonic()
        assert not waiter.wait(10.0, never_ready, read)
        assert time.monotonic() - started < 2.0  # not the 10 s asked for
        if isinstance(waiter, PostgresWaiter):
            assert waiter._conn is not None  # still listening: a stop is no lost connection
    finally:
        timer.join()
        waiter.close()
        os.close(read)


def test_postgres_waiter__a_notification_still_wakes_a_wait_that_watches_a_wake_descriptor() -> None:
    import psycopg

    conninfo = make_url(require_postgres()).set(drivername="postgresql").render_as_string(hide_password=False)
    channel = f"pq_test_{uuid.uuid4().hex[:12]}"
    waiter = PostgresWaiter({"conninfo": conninfo}, channel)
    read, write = os.pipe()

    def send() -> None:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute("SELECT pg_notify(%s, 'default')", (channel,))

    try:
        assert not waiter.wait(0.05, never_ready, read)  # connects and listens
        time.sleep(PostgresWaiter.QUIET)
        timer = threading.Timer(0.1, send)
        timer.start()
        started = time.monotonic()
        assert waiter.wait(5.0, never_ready, read)  # after a quiet spell: claim without asking
        assert time.monotonic() - started < PostgresWaiter.FALLBACK_POLL
        timer.join()
    finally:
        waiter.close()
        os.close(read)
        os.close(write)
