"""The practical limit: the raw driver (sqlite3, psycopg 3) doing the same work on pqueue's own tables.

Same tables, indexes and event rows as pqueue, hand-written statements, no seat check, no
retry loop, no ORM: what is left is the database's own cost. SQL lives here only because this
is the baseline pqueue is measured against.

Jobs put here have no idempotency key, so, as in pqueue, they get no payload digest
(payload_hash is ''). A batch goes in the fastest way measured for each driver (10,000 jobs in
batches of 1,000 on the 2-core machine these figures come from, median of 3–4 interleaved runs):

- SQLite: one INSERT … SELECT FROM json_each(?) for the jobs (the payloads as one JSON array) and one
  for their events (the returned ids as one JSON array), about 74k jobs/s; executemany of both
  INSERTs about 55k; one INSERT per row about 40k; json_each with [queue, payload] items read
  through ->> / -> about 45k (the queue is the same for every job here, so it is not sent).
- PostgreSQL: one statement, INSERT … SELECT FROM jsonb_array_elements(%s::jsonb) WITH ORDINALITY
  with the events' INSERT in the same WITH, about 24k jobs/s; the same as two statements about 22k;
  unnest(%s::text[]) about 19k; executemany (pipelined) about 9.5k.

Claim + complete in one transaction per job on PostgreSQL is likewise one statement (the
outcome, its event, the next claim and its event in one WITH): about 460 jobs/s against about 320
for four statements and 290 for four pipelined ones.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Sequence

import psycopg

from bench.databases import Databases, Target
from bench.library import BATCH, open_store
from bench.payloads import payload_text

PgConnection = psycopg.Connection[tuple[object, ...]]
SQLITE_NOW_MS = "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)"
JOB_COLUMNS = (
    "pq_jobs (queue, payload, payload_hash, status, priority, attempts, max_attempts, lease_id, created_at, run_after)"
)
EVENT_COLUMNS = "pq_events (job_id, from_status, to_status, at, actor, message)"
INSERT_JOB = (
    f"INSERT INTO {JOB_COLUMNS} VALUES ('default', {{p}}, '', 'unprocessed', 0, 0, 3, 0, {{now}}, {{now}}) RETURNING id"
)
INSERT_EVENT = f"INSERT INTO {EVENT_COLUMNS} VALUES ({{p}}, {{p}}, {{p}}, {{now}}, {{p}}, {{p}})"
SQLITE_INSERT_JOBS = (
    f"INSERT INTO {JOB_COLUMNS} SELECT 'default', value, '', 'unprocessed', 0, 0, 3, 0, {SQLITE_NOW_MS}, "
    f"{SQLITE_NOW_MS} FROM json_each(?) ORDER BY key RETURNING id"
)
SQLITE_CREATED_EVENTS = (
    f"INSERT INTO {EVENT_COLUMNS} SELECT value, NULL, 'unprocessed', {SQLITE_NOW_MS}, 'producer', NULL "
    "FROM json_each(?)"
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
# One round trip: the jobs, then their creation events from the ids the INSERT returns.
PG_PUT_ONE = f"""
WITH job AS (INSERT INTO {JOB_COLUMNS}
  VALUES ('default', %s, '', 'unprocessed', 0, 0, 3, 0, clock_timestamp(), clock_timestamp()) RETURNING id)
INSERT INTO {EVENT_COLUMNS} SELECT id, NULL, 'unprocessed', clock_timestamp(), 'producer', NULL FROM job
RETURNING job_id
"""
PG_PUT_MANY = f"""
WITH job AS (INSERT INTO {JOB_COLUMNS}
  SELECT 'default', item.value, '', 'unprocessed', 0, 0, 3, 0, clock_timestamp(), clock_timestamp()
  FROM jsonb_array_elements(%s::jsonb) WITH ORDINALITY AS item(value, position) ORDER BY item.position
  RETURNING id)
INSERT INTO {EVENT_COLUMNS} SELECT id, NULL, 'unprocessed', clock_timestamp(), 'producer', NULL FROM job
RETURNING job_id
"""
# The outcome of (id, lease), its event, the next claim and its event: one statement, one commit.
PG_FINISH_AND_CLAIM = f"""
WITH done AS ({COMPLETE.format(p="%s", now="clock_timestamp()")} RETURNING id),
done_event AS (INSERT INTO {EVENT_COLUMNS}
  SELECT id, 'under_process', 'processed', clock_timestamp(), 'bench', 'ok' FROM done),
claimed AS ({PG_CLAIM.strip()}),
claim_event AS (INSERT INTO {EVENT_COLUMNS}
  SELECT id, 'unprocessed', 'under_process', clock_timestamp(), 'bench', NULL FROM claimed)
SELECT (SELECT count(*) FROM done), claimed.id, claimed.lease_id FROM (SELECT 1) AS one LEFT JOIN claimed ON true
"""
RESULT = '{"ok":true}'


def _payloads(numbers: Sequence[int]) -> str:
    """The payloads as one JSON array (each serialised once, as pqueue serialises its batch)."""
    return "[" + ",".join(payload_text(number) for number in numbers) + "]"


def _counted(n: int, done: int, what: str = "claimed") -> None:
    if done != n:
        raise RuntimeError(f"{what} {done} of {n} jobs")


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


def _sqlite_put_one(conn: sqlite3.Connection, number: int) -> None:
    conn.execute("BEGIN IMMEDIATE")
    job_id = conn.execute(_sqlite_sql(INSERT_JOB), (payload_text(number),)).fetchone()[0]
    conn.execute(_sqlite_sql(INSERT_EVENT), (job_id, None, "unprocessed", "producer", None))
    conn.execute("COMMIT")


def _sqlite_put_many(conn: sqlite3.Connection, numbers: Sequence[int]) -> None:
    conn.execute("BEGIN IMMEDIATE")
    ids = conn.execute(SQLITE_INSERT_JOBS, (_payloads(numbers),)).fetchall()
    conn.execute(SQLITE_CREATED_EVENTS, ("[" + ",".join(str(row[0]) for row in ids) + "]",))
    conn.execute("COMMIT")


def _sqlite_fill(conn: sqlite3.Connection, n: int) -> None:
    for start in range(0, n, BATCH):
        _sqlite_put_many(conn, range(start, min(n, start + BATCH)))


def sqlite_put_one(databases: Databases, n: int) -> Callable[[], float]:
    def run() -> float:
        target = databases.fresh("sqlite", "raw_put_one")
        conn = _sqlite(target)
        started = time.perf_counter()
        for number in range(n):
            _sqlite_put_one(conn, number)
        elapsed = time.perf_counter() - started
        conn.close()
        return n / elapsed

    return run


def sqlite_put_batch(databases: Databases, n: int) -> Callable[[], float]:
    def run() -> float:
        target = databases.fresh("sqlite", "raw_put_batch")
        conn = _sqlite(target)
        started = time.perf_counter()
        _sqlite_fill(conn, n)
        elapsed = time.perf_counter() - started
        conn.close()
        return n / elapsed

    return run


def _sqlite_claim(conn: sqlite3.Connection) -> tuple[int, int] | None:
    """The next job claimed, with its event row (inside the caller's transaction)."""
    candidate = conn.execute(SQLITE_CANDIDATE).fetchone()
    if candidate is None:
        return None
    job_id, lease_id = conn.execute(SQLITE_CLAIM, (candidate[0],)).fetchone()
    conn.execute(_sqlite_sql(INSERT_EVENT), (job_id, "unprocessed", "under_process", "bench", None))
    return job_id, lease_id


def _sqlite_complete(conn: sqlite3.Connection, job_id: int, lease_id: int) -> None:
    """The fenced outcome with its event row (inside the caller's transaction)."""
    if conn.execute(_sqlite_sql(COMPLETE), (RESULT, job_id, lease_id)).rowcount != 1:
        raise RuntimeError(f"job {job_id} lost its lease {lease_id}")
    conn.execute(_sqlite_sql(INSERT_EVENT), (job_id, "under_process", "processed", "bench", "ok"))


def sqlite_claim_complete(databases: Databases, n: int) -> Callable[[], float]:
    """Claim, commit; complete, commit: two transactions per job (get_item + update_status)."""

    def run() -> float:
        target = databases.fresh("sqlite", "raw_claim")
        conn = _sqlite(target)
        _sqlite_fill(conn, n)
        done = 0
        started = time.perf_counter()
        while True:
            conn.execute("BEGIN IMMEDIATE")
            claimed = _sqlite_claim(conn)
            conn.execute("COMMIT")
            if claimed is None:
                break
            conn.execute("BEGIN IMMEDIATE")
            _sqlite_complete(conn, *claimed)
            conn.execute("COMMIT")
            done += 1
        elapsed = time.perf_counter() - started
        conn.close()
        _counted(n, done)
        return n / elapsed

    return run


def sqlite_finish_and_claim(databases: Databases, n: int) -> Callable[[], float]:
    """Complete + claim the next in one transaction per job (finish_and_claim), after a first claim."""

    def run() -> float:
        target = databases.fresh("sqlite", "raw_finish_claim")
        conn = _sqlite(target)
        _sqlite_fill(conn, n)
        done = 0
        started = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        claimed = _sqlite_claim(conn)
        conn.execute("COMMIT")
        while claimed is not None:
            conn.execute("BEGIN IMMEDIATE")
            _sqlite_complete(conn, *claimed)
            claimed = _sqlite_claim(conn)
            conn.execute("COMMIT")
            done += 1
        elapsed = time.perf_counter() - started
        conn.close()
        _counted(n, done)
        return n / elapsed

    return run


# -- PostgreSQL --------------------------------------------------------------------------------


def _pg(target: Target) -> PgConnection:
    open_store(target).close()  # pqueue's schema
    assert target.conninfo is not None
    return psycopg.connect(target.conninfo)


def _pg_sql(template: str) -> str:
    return template.format(p="%s", now="clock_timestamp()")


def _pg_put_one(conn: PgConnection, number: int) -> None:
    with conn.transaction():
        conn.execute(PG_PUT_ONE, (payload_text(number),)).fetchone()


def _pg_put_many(conn: PgConnection, numbers: Sequence[int]) -> None:
    with conn.transaction():
        ids = conn.execute(PG_PUT_MANY, (_payloads(numbers),)).fetchall()
    _counted(len(numbers), len(ids), "put")


def _pg_fill(conn: PgConnection, n: int) -> None:
    for start in range(0, n, BATCH):
        _pg_put_many(conn, range(start, min(n, start + BATCH)))


def pg_put_one(databases: Databases, n: int) -> Callable[[], float]:
    def run() -> float:
        target = databases.fresh("postgresql", "raw_put_one")
        with _pg(target) as conn:
            started = time.perf_counter()
            for number in range(n):
                _pg_put_one(conn, number)
            elapsed = time.perf_counter() - started
        databases.drop(target)
        return n / elapsed

    return run


def pg_put_batch(databases: Databases, n: int) -> Callable[[], float]:
    def run() -> float:
        target = databases.fresh("postgresql", "raw_put_batch")
        with _pg(target) as conn:
            started = time.perf_counter()
            _pg_fill(conn, n)
            elapsed = time.perf_counter() - started
        databases.drop(target)
        return n / elapsed

    return run


def pg_claim_complete(databases: Databases, n: int) -> Callable[[], float]:
    """Claim, commit; complete, commit: two transactions per job (get_item + update_status)."""

    def run() -> float:
        target = databases.fresh("postgresql", "raw_claim")
        event_sql, complete_sql = _pg_sql(INSERT_EVENT), _pg_sql(COMPLETE)
        with _pg(target) as conn:
            _pg_fill(conn, n)
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
                    conn.execute(complete_sql, (RESULT, job_id, lease_id))
                    conn.execute(event_sql, (job_id, "under_process", "processed", "bench", "ok"))
                done += 1
            elapsed = time.perf_counter() - started
        databases.drop(target)
        _counted(n, done)
        return n / elapsed

    return run


def pg_finish_and_claim(databases: Databases, n: int) -> Callable[[], float]:
    """Complete + claim the next in one transaction per job (finish_and_claim), after a first claim."""

    def run() -> float:
        target = databases.fresh("postgresql", "raw_finish_claim")
        event_sql = _pg_sql(INSERT_EVENT)
        with _pg(target) as conn:
            _pg_fill(conn, n)
            done = 0
            started = time.perf_counter()
            with conn.transaction():
                claimed = conn.execute(PG_CLAIM).fetchone()
                if claimed is not None:
                    conn.execute(event_sql, (claimed[0], "unprocessed", "under_process", "bench", None))
            while claimed is not None:
                with conn.transaction():
                    row = conn.execute(PG_FINISH_AND_CLAIM, (RESULT, *claimed)).fetchone()
                    assert row is not None
                    finished, next_id, next_lease = row
                    if finished != 1:  # rolls the claim back with it
                        raise RuntimeError(f"job {claimed[0]} lost its lease {claimed[1]}")
                claimed = None if next_id is None else (next_id, next_lease)
                done += 1
            elapsed = time.perf_counter() - started
        databases.drop(target)
        _counted(n, done)
        return n / elapsed

    return run
