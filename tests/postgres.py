"""PostgreSQL for the tests: the server's URL, and a pool of migrated schemas per test process.

Every test on PostgreSQL gets a schema name of its own (PQ_DB_SCHEMA) that does not exist yet, so
the migration tests, `pq migrate` and the programs that migrate on start see a fresh database.
The test's first store instead takes a schema from its process's pool (`SchemaPool.take`): one
migrated once and renamed to the test's name, so no test pays a migration. When the test ends the
schema is emptied as a fresh migration leaves it (every row deleted, the rows the migrations write
put back, every sequence restarted: the ids, whose high bits carry the server's timeline, start
where a fresh schema's start) and goes back to the pool under its pool name; a schema whose
tables, columns, constraints, sequences or revision a test changed is dropped instead.
River's test schemas work the same way (riverdbtest: migrated schemas, truncated and reused);
STYLE §6's template database per test (procrastinate's CREATE DATABASE … TEMPLATE) is not used,
since the programs a test starts are pointed at a schema (PQ_DB_SCHEMA), not at a database.

A pool's schemas carry its name as their comment (which a rename keeps), and the pool holds an
advisory lock named after it while its test process lives. A pool starting drops the schemas of
pools whose lock nobody holds: those a test process killed hard (SIGKILL, the timeout's kill)
left behind, lent ones included.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
import sqlalchemy
from sqlalchemy.engine import Connection
from sqlalchemy.pool import NullPool

import pqueue
from tests.support import IN_CI

POSTGRES_URL = os.environ.get("PQ_TEST_POSTGRES_URL")

# What a schema is made of, independent of its name: a test that altered it is not reused.
_SHAPE = """
SELECT md5(string_agg(part, ',' ORDER BY part)) FROM (
  SELECT c.relname || ':' || c.relkind::text FROM pg_class c WHERE c.relnamespace = %(s)s::text::regnamespace
  UNION ALL
  SELECT c.relname || '.' || a.attname || ':' || format_type(a.atttypid, a.atttypmod) || ':' || a.attnotnull
         || ':' || coalesce(pg_get_expr(d.adbin, d.adrelid), '')
  FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
  LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
  WHERE c.relnamespace = %(s)s::text::regnamespace AND a.attnum > 0 AND NOT a.attisdropped
  UNION ALL
  SELECT conname || ':' || pg_get_constraintdef(oid) FROM pg_constraint WHERE connamespace = %(s)s::text::regnamespace
  UNION ALL
  SELECT sequencename || ':' || start_value || ':' || max_value || ':' || increment_by
  FROM pg_sequences WHERE schemaname = %(s)s::text
) AS parts(part)
"""


def require_postgres() -> str:
    """The test server's URL; skip without one locally, fail without one in CI."""
    if not POSTGRES_URL:
        if IN_CI:
            pytest.fail("PQ_TEST_POSTGRES_URL is not set: PostgreSQL tests must run in CI")
        pytest.skip("PQ_TEST_POSTGRES_URL is not set")
    return POSTGRES_URL


def drop_schema(url: str, schema: str) -> None:
    """Remove a test's PostgreSQL schema and everything in it."""
    engine = sqlalchemy.create_engine(url, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        engine.dispose()


class SchemaPool:
    """This test process's migrated schemas on the test server, each used by one test at a time."""

    def __init__(self, url: str, home: Path) -> None:
        self.url = url
        self.home = home
        self.prefix = f"pqpool_{uuid.uuid4().hex[:10]}"
        self.engine = sqlalchemy.create_engine(url, pool_size=1)
        self.alive = sqlalchemy.create_engine(url, poolclass=NullPool).connect()  # holds the pool's lock
        self.alive.exec_driver_sql("SELECT pg_advisory_lock(hashtext(%(p)s))", {"p": self.prefix})
        self.alive.commit()
        self._drop_abandoned()
        self.reference = self._migrated(f"{self.prefix}_ref")  # never used by a test
        with self.engine.begin() as conn:
            self.shape = self._shape(conn, self.reference)
            self.tables = [
                row[0]
                for row in conn.exec_driver_sql(
                    "SELECT tablename FROM pg_tables WHERE schemaname = %(s)s AND tablename <> 'pq_alembic_version'",
                    {"s": self.reference},
                )
            ]
            self.seeded = [
                t for t in self.tables if conn.exec_driver_sql(f'SELECT 1 FROM "{self.reference}"."{t}"').first()
            ]
            self.sequences = [
                row[0]
                for row in conn.exec_driver_sql(
                    "SELECT sequencename FROM pg_sequences WHERE schemaname = %(s)s", {"s": self.reference}
                )
            ]
        self.free: list[str] = []
        self.lent: dict[str, str] = {}  # the test's schema name -> the pool name it came under
        self.count = 0

    def take(self, schema: str) -> bool:
        """Give the test's schema name to a migrated schema of the pool; False when the schema
        exists already (a program or the test made it), which then stays the test's own."""
        pooled = self.free.pop() if self.free else self._migrated(self._next_name())
        try:
            with self.engine.begin() as conn:
                conn.exec_driver_sql(f'ALTER SCHEMA "{pooled}" RENAME TO "{schema}"')
        except sqlalchemy.exc.DBAPIError:
            self.free.append(pooled)
            return False
        self.lent[schema] = pooled
        return True

    def give_back(self, schema: str) -> None:
        """The test is over: its schema back in the pool, emptied, or dropped when it was changed
        (or cannot be emptied)."""
        pooled = self.lent.pop(schema)
        try:
            with self.engine.begin() as conn:
                if self._shape(conn, schema) != self.shape:
                    raise ValueError(f"the test changed schema {schema}")
                conn.exec_driver_sql("SET LOCAL lock_timeout = '5s'")
                conn.exec_driver_sql("SET LOCAL session_replication_role = replica")  # no foreign key order
                for table in self.tables:
                    conn.exec_driver_sql(f'DELETE FROM "{schema}"."{table}"')
                for table in self.seeded:
                    conn.exec_driver_sql(f'INSERT INTO "{schema}"."{table}" SELECT * FROM "{self.reference}"."{table}"')
                for sequence in self.sequences:
                    conn.exec_driver_sql(f'ALTER SEQUENCE "{schema}"."{sequence}" RESTART')
                conn.exec_driver_sql(f'ALTER SCHEMA "{schema}" RENAME TO "{pooled}"')
        except (sqlalchemy.exc.DBAPIError, ValueError):
            drop_schema(self.url, schema)
            return
        self.free.append(pooled)

    def close(self) -> None:
        """Drop every schema of the pool (and the reference)."""
        for schema in [*self.free, *self.lent, self.reference]:
            drop_schema(self.url, schema)
        self.engine.dispose()
        self.alive.close()  # the session's end releases the lock
        self.alive.engine.dispose()

    def _drop_abandoned(self) -> None:
        """Drop the schemas of pools whose test process is gone (nobody holds their lock)."""
        with self.engine.begin() as conn:
            owners: dict[str, list[str]] = {}
            for name, owner in conn.exec_driver_sql(
                "SELECT nspname, obj_description(oid, 'pg_namespace') FROM pg_namespace"
                " WHERE obj_description(oid, 'pg_namespace') LIKE 'pqpool_%%'"
            ):
                owners.setdefault(owner, []).append(name)
        for owner, schemas in owners.items():
            if owner == self.prefix:
                continue
            taken = self.alive.exec_driver_sql("SELECT pg_try_advisory_lock(hashtext(%(p)s))", {"p": owner}).scalar()
            self.alive.commit()
            if not taken:
                continue  # its test process still runs
            try:
                for schema in schemas:
                    drop_schema(self.url, schema)
            finally:
                self.alive.exec_driver_sql("SELECT pg_advisory_unlock(hashtext(%(p)s))", {"p": owner})
                self.alive.commit()

    def _next_name(self) -> str:
        self.count += 1
        return f"{self.prefix}_{self.count}"

    def _migrated(self, schema: str) -> str:
        settings = pqueue.load_settings(home=self.home, database_url=self.url, db_schema=schema)
        pqueue.connect(settings=settings, migrate=True).close()
        with self.engine.begin() as conn:
            conn.exec_driver_sql(f"COMMENT ON SCHEMA \"{schema}\" IS '{self.prefix}'")
        return schema

    @staticmethod
    def _shape(conn: Connection, schema: str) -> str:
        """Within a transaction: the schema's revision and make-up (names printed as its own see them)."""
        conn.exec_driver_sql(f'SET LOCAL search_path TO "{schema}"')
        version = conn.exec_driver_sql(f"SELECT string_agg(version_num, ',') FROM \"{schema}\".pq_alembic_version")
        shape = conn.exec_driver_sql(_SHAPE, {"s": schema}).scalar_one()
        return f"{version.scalar_one()}:{shape}"
