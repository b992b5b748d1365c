"""Claim cost against table size: the same claim + complete with 10k, 100k, 1M jobs already stored,
and at the largest size with the jobs spread over 10 and 100 partners (the fair share's pick then
looks at each partner's next job).

The table is filled with SQL in one statement per table (put_items would take minutes for a
million jobs): half the jobs processed, each with its three event rows, half waiting with one,
as a busy queue's history and backlog would look. Claims take from the backlog. Both backends
hold the same history: job i was submitted i milliseconds after an hour ago and, when processed,
ran 30 + (i mod 61) seconds from then (the run times a waiting job's wait is predicted from).
"""

from __future__ import annotations

import os
import sqlite3
import statistics
import time
from collections.abc import Callable
from typing import Any

import psycopg

from bench.databases import Databases, Target
from bench.library import WORKER, open_store
from bench.measure import Row
from pqueue import PersistentQ, Status

HOUR_MS = 3_600_000
SERVING = "bench-serving"  # the live consumer a waiting job's wait sees

SQLITE_FILL = """
WITH RECURSIVE seq(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < :size)
INSERT INTO pq_jobs (queue, payload, payload_hash, status, priority, attempts, max_attempts, lease_id,
                     worker_id, result, created_at, run_after, started_at, finished_at/*partner_column*/)
SELECT 'default', '{"n":' || i || '}', 'prefill',
       CASE WHEN i <= :half THEN 'processed' ELSE 'unprocessed' END, 0,
       CASE WHEN i <= :half THEN 1 ELSE 0 END, 3, CASE WHEN i <= :half THEN 1 ELSE 0 END,
       CASE WHEN i <= :half THEN 'bench' END, CASE WHEN i <= :half THEN '{"ok":true}' END,
       :start + i, :start + i,
       CASE WHEN i <= :half THEN :start + i END, CASE WHEN i <= :half THEN :start + i + 1000 * (30 + i % 61) END
       /*partner_value*/
FROM seq
"""
PG_FILL = """
INSERT INTO pq_jobs (queue, payload, payload_hash, status, priority, attempts, max_attempts, lease_id,
                     worker_id, result, created_at, run_after, started_at, finished_at/*partner_column*/)
SELECT 'default', jsonb_build_object('n', i), 'prefill',
       CASE WHEN i <= %(half)s THEN 'processed' ELSE 'unprocessed' END, 0,
       CASE WHEN i <= %(half)s THEN 1 ELSE 0 END, 3, CASE WHEN i <= %(half)s THEN 1 ELSE 0 END,
       CASE WHEN i <= %(half)s THEN 'bench' END, CASE WHEN i <= %(half)s THEN '{"ok":true}'::jsonb END,
       now() - interval '1 hour' + i * interval '1 millisecond',
       now() - interval '1 hour' + i * interval '1 millisecond',
       CASE WHEN i <= %(half)s THEN now() - interval '1 hour' + i * interval '1 millisecond' END,
       CASE WHEN i <= %(half)s
            THEN now() - interval '1 hour' + i * interval '1 millisecond' + (30 + i %% 61) * interval '1 second' END
       /*partner_value*/
FROM generate_series(1, %(size)s) AS i
"""


def fill(template: str, partners: int, percent: str = "%") -> str:
    """The fill statement for `partners` partners, dealt round-robin to p0, p1, … (one partner: the
    column keeps its default, so the same fill runs on a revision before partners)."""
    column, value = ("", "") if partners == 1 else (", partner", f", 'p' || (i {percent} {partners})")
    return template.replace("/*partner_column*/", column).replace("/*partner_value*/", value)


def has_partners() -> bool:
    """Whether this revision of the library knows partners (bench/compare runs older ones too)."""
    return hasattr(PersistentQ, "add_partner")


EVENTS = [
    "INSERT INTO pq_events (job_id, from_status, to_status, at, actor) "
    "SELECT id, NULL, 'unprocessed', created_at, 'producer' FROM pq_jobs",
    "INSERT INTO pq_events (job_id, from_status, to_status, at, actor) "
    "SELECT id, 'unprocessed', 'under_process', started_at, 'bench' FROM pq_jobs WHERE status = 'processed'",
    "INSERT INTO pq_events (job_id, from_status, to_status, at, actor, message) "
    "SELECT id, 'under_process', 'processed', finished_at, 'bench', 'ok' FROM pq_jobs WHERE status = 'processed'",
]


def prefill(target: Target, size: int, partners: int = 1) -> None:
    """Fill pqueue's tables with `size` jobs and their events, spread over `partners` partners (1:
    all `default`'s), then update the planner's statistics."""
    store = open_store(target)
    for n in range(partners if partners > 1 else 0):
        store.add_partner(f"p{n}")
    store.close()
    if target.backend == "sqlite":
        conn = sqlite3.connect(str(target.path), isolation_level=None)
        start = int(time.time() * 1000) - HOUR_MS
        conn.execute("BEGIN")
        conn.execute(fill(SQLITE_FILL, partners), {"size": size, "half": size // 2, "start": start})
        for statement in EVENTS:
            conn.execute(statement)
        conn.execute("COMMIT")
        conn.execute("ANALYZE")
        conn.close()
        return
    assert target.conninfo is not None
    with psycopg.connect(target.conninfo, autocommit=True) as pg:
        with pg.transaction():
            pg.execute(fill(PG_FILL, partners, percent="%%"), {"size": size, "half": size // 2})
            for statement in EVENTS:
                pg.execute(statement)
        pg.execute("VACUUM ANALYZE")


def measure(store: PersistentQ, claims: int, claim_row: Row, both_row: Row) -> Callable[[], float]:
    """Per run: `claims` claims + completes; the row values are median milliseconds per call."""

    def run() -> float:
        claim_ms: list[float] = []
        both_ms: list[float] = []
        for _ in range(claims):
            started = time.perf_counter()
            job = store.get_item(WORKER)
            claimed = time.perf_counter()
            if job is None:
                raise RuntimeError("the backlog ran out")
            store.update_status(job.id, Status.PROCESSED, lease_id=job.lease_id, result={"ok": True})
            claim_ms.append((claimed - started) * 1000)
            both_ms.append((time.perf_counter() - started) * 1000)
        claim_row.runs.append(statistics.median(claim_ms))
        return statistics.median(both_ms)

    return run


def has_wait() -> bool:
    """Whether this revision of the library answers a waiting job's wait (bench/compare runs older ones too)."""
    return hasattr(PersistentQ, "wait")


def measure_wait(store: PersistentQ, calls: int, row: Row) -> Callable[[], float]:
    """Per run: `calls` computations of the wait GET /jobs/{id} answers, one after another, for the
    newest waiting job (the deepest in line); the row's value is the run's median in milliseconds,
    its samples every call's seconds (the p50 and p99 over all runs). A live consumer serves the
    queue (registered again before each run, untimed), so the wait has its p50 and p90 as a served
    queue's job has (with none it would say no_consumer and skip them)."""
    newest = store.get_all_items(status=Status.UNPROCESSED, limit=1).items[0].id

    def run() -> float:
        store.register_worker(SERVING, kind="consumer", queue=store.settings.queue, host="bench", pid=os.getpid())
        took: list[float] = []
        for _ in range(calls):
            started = time.perf_counter()
            store.wait(newest)
            took.append(time.perf_counter() - started)
        row.samples += took
        return statistics.median(took) * 1000

    return run


def query_plan(store: PersistentQ) -> str:
    """The claim's candidate SELECT as it runs (values bound, as pqueue sends it), planned by the
    database; PostgreSQL executes it (EXPLAIN ANALYZE) and rolls back."""
    statement = store.candidate_query(store.settings.queue)
    compiled = statement.compile(dialect=store.engine.dialect)
    sqlite = store.engine.dialect.name == "sqlite"
    prefix = "EXPLAIN QUERY PLAN " if sqlite else "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) "
    params: Any = tuple(compiled.params[name] for name in compiled.positiontup or ()) if sqlite else compiled.params
    with store.engine.connect() as conn:
        rows = conn.exec_driver_sql(prefix + str(compiled), params).all()
        conn.rollback()
    column = -1 if sqlite else 0
    plan = "\n".join(str(row[column]) for row in rows)
    return f"{compiled}\n-- parameters: {params}\n\n{plan}"


def open_filled(databases: Databases, backend: str, size: int, partners: int = 1) -> tuple[Target, PersistentQ, float]:
    """A database holding `size` jobs of `partners` partners, an open store on it, and how long the
    fill took."""
    target = databases.fresh(backend, f"size{size}p{partners}")
    started = time.perf_counter()
    prefill(target, size, partners)
    return target, open_store(target), time.perf_counter() - started
