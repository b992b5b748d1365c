"""The practical limit: the raw driver (sqlite3, psycopg 3) doing the same work on pqueue's own tables.

Same tables, indexes and event rows as pqueue, hand-written statements, no seat check, no
retry loop, no ORM: what is left is the database's own cost. SQL lives here only because this
is the baseline pqueue is measured against.
"""

from __future__ import annotations

import hashlib
import sqlite3
import time
from collections.abc import Callable

import psycopg

from bench.databases import Databases, Target
from bench.library import BATCH, open_store
from bench.payloads import payload_text

SQLITE_NOW_MS = "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)"
INSERT_JOB = (
    "INSERT INTO pq_jobs (queue, payload, payload_hash, status, priority, attempts, max_attempts, lease_id, "
    "created_at, run_after) VALUES ('default', {p}, {p}, 'unprocessed', 0, 0, 3, 0, {now}, {now}) RETURNING id"
)
INSERT_EVENT = (
    "INSERT INTO pq_events (job_id, from_status, to_status, at, actor, message) VALUES ({p}, {p}, {p}, {now}, {p}, {p})"
)
SQLITE_CANDIDATE = (
    "SELECT id FROM pq_jobs WHERE queue = 'default' AND status IN ('unprocessed', 'crashed') "
    f"AND run_after <= {SQLITE_NOW_MS} ORDER BY priority, id LIMIT 1"
)
SQLITE_CLAIM = (
    "UPDATE pq_jobs SET status = 'under_process', attempts = attempts + 1, lease_id = lease_id + 1, "
    f"worker_id = 'bench', lease_expires_at = {SQLITE_NOW_MS} + 30000, started_at = {SQLITE_NOW_MS} "
    "WHERE id = ? AND status IN ('unprocessed', 'crashed') RETURNING id, lease_id"
)
PG_CLAIM = """
UPDATE pq_jobs SET status = 'under_process', attempts = attempts + 1, lease_id = lease_id + 1,
  worker_id = 'bench', lease_expires_at = clock_timestamp() + interval '30 seconds', started_at = clock_timestamp()
WHERE id = (
  SELECT id FROM pq_jobs WHERE queue = 'default' AND status IN ('unprocessed', 'crashed')
    AND run_after <= clock_timestamp() ORDER BY priority, id LIMIT 1 FOR UPDATE SKIP LOCKED)
RETURNING id, lease_id
"""
COMPLETE = (
    "UPDATE pq_jobs SET status = 'processed', result = {p}, finished_at = {now}, lease_expires_at = NULL "
    "WHERE id = {p} AND status = 'under_process' AND lease_id = {p}"
)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# -- SQLite ------------------------------------------------------------------------------------


def _sqlite(target: Target) -> sqlite3.Connection:
    """A connection configured as pqueue configures its own: WAL, synchronous=FULL, explicit BEGIN."""
    open_store(target).close()  # pqueue's schema
    conn = sqlite3.connect(str(target.path), isolation_level=None, timeout=30)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    return conn


def _sqlite_sql(template: str) -> str:
    return template.format(p="?", now=SQLITE_NOW_MS)


def _sqlite_put(conn: sqlite3.Connection, numbers: range) -> None:
    job_sql, event_sql = _sqlite_sql(INSERT_JOB), _sqlite_sql(INSERT_EVENT)
    conn.execute("BEGIN IMMEDIATE")
    for number in numbers:
        text = payload_text(number)
        job_id = conn.execute(job_sql, (text, _digest(text))).fetchone()[0]
        conn.execute(event_sql, (job_id, None, "unprocessed", "producer", None))
    conn.execute("COMMIT")


def sqlite_put_one(databases: Databases, n: int) -> Callable[[], float]:
    def run() -> float:
        target = databases.fresh("sqlite", "raw_put_one")
        conn = _sqlite(target)
        started = time.perf_counter()
        for number in range(n):
            _sqlite_put(conn, range(number, number + 1))
        elapsed = time.perf_counter() - started
        conn.close()
        return n / elapsed

    return run


def sqlite_put_batch(databases: Databases, n: int) -> Callable[[], float]:
    def run() -> float:
        target = databases.fresh("sqlite", "raw_put_batch")
        conn = _sqlite(target)
        started = time.perf_counter()
        for start in range(0, n, BATCH):
            _sqlite_put(conn, range(start, min(n, start + BATCH)))
        elapsed = time.perf_counter() - started
        conn.close()
        return n / elapsed

    return run


def sqlite_claim_complete(databases: Databases, n: int) -> Callable[[], float]:
    def run() -> float:
        target = databases.fresh("sqlite", "raw_claim")
        conn = _sqlite(target)
        for start in range(0, n, BATCH):
            _sqlite_put(conn, range(start, min(n, start + BATCH)))
        event_sql, complete_sql = _sqlite_sql(INSERT_EVENT), _sqlite_sql(COMPLETE)
        done = 0
        started = time.perf_counter()
        while True:
            conn.execute("BEGIN IMMEDIATE")
            candidate = conn.execute(SQLITE_CANDIDATE).fetchone()
            if candidate is None:
                conn.execute("COMMIT")
                break
            job_id, lease_id = conn.execute(SQLITE_CLAIM, (candidate[0],)).fetchone()
            conn.execute(event_sql, (job_id, "unprocessed", "under_process", "bench", None))
            conn.execute("COMMIT")
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(complete_sql, ('{"ok":true}', job_id, lease_id))
            conn.execute(event_sql, (job_id, "under_process", "processed", "bench", "ok"))
            conn.execute("COMMIT")
            done += 1
        elapsed = time.perf_counter() - started
        conn.close()
        if done != n:
            raise RuntimeError(f"claimed {done} of {n} jobs")
        return n / elapsed

    return run


# -- PostgreSQL --------------------------------------------------------------------------------


def _pg(target: Target) -> psycopg.Connection[tuple[object, ...]]:
    open_store(target).close()  # pqueue's schema
    assert target.conninfo is not None
    return psycopg.connect(target.conninfo)


def _pg_sql(template: str) -> str:
    return template.format(p="%s", now="clock_timestamp()")


def _pg_put(conn: psycopg.Connection[tuple[object, ...]], numbers: range) -> None:
    job_sql, event_sql = _pg_sql(INSERT_JOB), _pg_sql(INSERT_EVENT)
    with conn.transaction(), conn.cursor() as cursor:
        texts = [payload_text(number) for number in numbers]
        if len(texts) == 1:
            row = cursor.execute(job_sql, (texts[0], _digest(texts[0]))).fetchone()
            assert row is not None
            ids = [row[0]]
        else:
            cursor.executemany(job_sql, [(t, _digest(t)) for t in texts], returning=True)
            ids = []
            while True:
                fetched = cursor.fetchone()
                assert fetched is not None
                ids.append(fetched[0])
                if not cursor.nextset():
                    break
        cursor.executemany(event_sql, [(i, None, "unprocessed", "producer", None) for i in ids])


def pg_put_one(databases: Databases, n: int) -> Callable[[], float]:
    def run() -> float:
        target = databases.fresh("postgresql", "raw_put_one")
        with _pg(target) as conn:
            started = time.perf_counter()
            for number in range(n):
                _pg_put(conn, range(number, number + 1))
            elapsed = time.perf_counter() - started
        databases.drop(target)
        return n / elapsed

    return run


def pg_put_batch(databases: Databases, n: int) -> Callable[[], float]:
    def run() -> float:
        target = databases.fresh("postgresql", "raw_put_batch")
        with _pg(target) as conn:
            started = time.perf_counter()
            for start in range(0, n, BATCH):
                _pg_put(conn, range(start, min(n, start + BATCH)))
            elapsed = time.perf_counter() - started
        databases.drop(target)
        return n / elapsed

    return run


def pg_claim_complete(databases: Databases, n: int) -> Callable[[], float]:
    def run() -> float:
        target = databases.fresh("postgresql", "raw_claim")
        event_sql, complete_sql = _pg_sql(INSERT_EVENT), _pg_sql(COMPLETE)
        with _pg(target) as conn:
            for start in range(0, n, BATCH):
                _pg_put(conn, range(start, min(n, start + BATCH)))
            done = 0
            started = time.perf_counter()
            while True:
                with conn.transaction():
                    claimed = conn.execute(PG_CLAIM).fetchone()
                    if claimed is None:
                        break
                    job_id, lease_id = claimed
                    conn.execute(event_sql, (job_id, "unprocessed", "under_process", "bench", None))
                with conn.transaction():
                    conn.execute(complete_sql, ('{"ok":true}', job_id, lease_id))
                    conn.execute(event_sql, (job_id, "under_process", "processed", "bench", "ok"))
                done += 1
            elapsed = time.perf_counter() - started
        databases.drop(target)
        if done != n:
            raise RuntimeError(f"claimed {done} of {n} jobs")
        return n / elapsed

    return run
