"""What differs between SQLite and PostgreSQL inside a statement: the clock, time arithmetic,
JSON arrays, upserts, the seat lock and the wake-up call; and the backup, which only SQLite has.

Where the backends need statements of different shapes (the claim, a put, the processed
outcome), both shapes are in their concern's module of pqueue/sql/, which picks one per backend.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    Engine,
    Float,
    Interval,
    String,
    Table,
    bindparam,
    case,
    cast,
    func,
    literal,
    literal_column,
    null,
    type_coerce,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.elements import ColumnElement

from pqueue.errors import DatabaseError, InvalidInput, PQError
from pqueue.schema import Timestamp


class SQLDialect:
    """The SQLite flavour; PostgresDialect overrides what differs."""

    name = "sqlite"

    def now(self, offset: timedelta) -> ColumnElement[Any]:
        """The database's clock (plus the test offset) as a Timestamp expression."""
        # julianday('now') has millisecond precision and is fixed for one statement.
        millis: ColumnElement[int] = literal_column("CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)")
        return type_coerce(millis + int(offset.total_seconds() * 1000), Timestamp())

    def add_seconds(self, moment: ColumnElement[Any], seconds: float | ColumnElement[Any]) -> ColumnElement[Any]:
        """moment + seconds (a number, or a bound parameter), still a Timestamp."""
        millis = int(seconds * 1000) if isinstance(seconds, int | float) else cast(seconds * 1000, BigInteger())
        return type_coerce(type_coerce(moment, BigInteger()) + millis, Timestamp())

    def seconds_between(self, later: ColumnElement[Any], earlier: ColumnElement[Any]) -> ColumnElement[float]:
        """later - earlier in seconds, as a float."""
        delta = type_coerce(later, BigInteger()) - type_coerce(earlier, BigInteger())
        return cast(delta, Float()) / 1000.0

    def larger(self, a: ColumnElement[Any], b: ColumnElement[Any]) -> ColumnElement[Any]:
        """The larger of two values (SQLite's scalar max)."""
        return func.max(a, b)

    def bucket(self, moment: ColumnElement[Any], seconds: int) -> ColumnElement[Any]:
        """The start of the time bucket of `seconds` that holds moment."""
        width = seconds * 1000
        millis = type_coerce(moment, BigInteger())
        return type_coerce((millis // width) * width, Timestamp())

    def insert(self, table: Table) -> Any:
        """An INSERT that supports ON CONFLICT (on_conflict_do_nothing / do_update)."""
        return sqlite.insert(table)

    def first_if(self, ordered: Any, condition: ColumnElement[bool]) -> Any:
        """The first row of an ordered SELECT, or none when a row-independent condition is false.

        SQLite tests a WHERE condition on every row it walks (a full queue would walk its whole
        backlog), so the condition becomes LIMIT 1 or LIMIT 0.
        """
        return ordered.limit(case((condition, 1), else_=0))

    def json_rows(self, array: ColumnElement[Any]) -> tuple[Any, ColumnElement[Any], ColumnElement[Any]]:
        """A JSON array parameter as rows: (the FROM clause, its position column, its element column)."""
        rows = func.json_each(array).table_valued("key", "value", "type").alias("item")
        return rows, rows.c.key, rows.c.value

    def json_element_json(self, rows: Any, array: ColumnElement[Any]) -> ColumnElement[Any]:
        """The element of a json_rows(array) row as JSON text, exactly as sent (for a JSON column).

        json_each gives an object or array as its JSON text, but a scalar as an SQL value (true
        becomes 1, a string loses its quotes, a number goes through a double), so a scalar is
        read again from the array by its position, which keeps its JSON text.
        """
        structured = rows.c.type.in_([literal_column("'object'"), literal_column("'array'")])
        path = literal_column("'$['").concat(rows.c.key).concat(literal_column("']'"))
        return case((structured, rows.c.value), else_=array.op("->")(path.self_group()))

    def json_item(self, element: ColumnElement[Any], index: int) -> ColumnElement[Any]:
        """Item `index` of a JSON array element, as an SQL scalar."""
        return element.op("->>")(literal_column(str(int(index))))

    def json_item_json(self, element: ColumnElement[Any], index: int) -> ColumnElement[Any]:
        """Item `index` of a JSON array element, as JSON text (for a JSON column)."""
        return element.op("->")(literal_column(str(int(index))))

    def seat_lock(self) -> ColumnElement[Any] | None:
        """The call that serialises claimers of the queue whose lock key is bound as :w_key, to
        run in a statement before the claim's; None on SQLite, where BEGIN IMMEDIATE already
        holds the write lock."""
        return None

    def wake_up(self) -> ColumnElement[Any] | None:
        """The call that wakes waiting consumers of :w_queue on :w_channel when the transaction
        commits; None on SQLite (they watch the database file)."""
        return None

    def read_only_reason(self) -> ColumnElement[Any]:
        """Why the session takes no writes, as text, or NULL when it does (always on SQLite)."""
        return null()

    def upsert_values(self, stmt: Any, keys: list[str], values: Mapping[str, Any]) -> Any:
        """INSERT … ON CONFLICT (keys) DO UPDATE SET values."""
        return stmt.on_conflict_do_update(index_elements=keys, set_=dict(values))

    def backup(self, engine: Engine, path: str) -> None:
        """Write a consistent copy of the database to a new file while it is in use."""
        target = os.path.abspath(path)
        if os.path.exists(target):
            raise InvalidInput("file", f"{target} already exists; choose a new file")
        # VACUUM cannot run inside a transaction: use the driver connection, which is in
        # autocommit mode (pqueue issues its own BEGINs).
        raw = engine.raw_connection()
        try:
            raw.driver_connection.execute("VACUUM INTO ?", (target,))  # type: ignore[union-attr]
        except sqlite3.Error as exc:
            raise DatabaseError(f"backup to {target} failed: {exc}") from exc
        finally:
            raw.close()


class PostgresDialect(SQLDialect):
    """PostgreSQL: clock_timestamp(), intervals, advisory seat lock, NOTIFY."""

    name = "postgresql"

    def now(self, offset: timedelta) -> ColumnElement[Any]:
        # now() is frozen at the start of the transaction; leases need the real time.
        clock = func.clock_timestamp()
        if not offset:
            return type_coerce(clock, Timestamp())
        return type_coerce(clock + literal(offset, Interval()), Timestamp())

    def add_seconds(self, moment: ColumnElement[Any], seconds: float | ColumnElement[Any]) -> ColumnElement[Any]:
        if isinstance(seconds, int | float):
            return type_coerce(moment + literal(timedelta(seconds=seconds), Interval()), Timestamp())
        return type_coerce(moment + func.make_interval(0, 0, 0, 0, 0, 0, seconds), Timestamp())

    def seconds_between(self, later: ColumnElement[Any], earlier: ColumnElement[Any]) -> ColumnElement[float]:
        return cast(func.extract("epoch", later - earlier), Float())

    def larger(self, a: ColumnElement[Any], b: ColumnElement[Any]) -> ColumnElement[Any]:
        return func.greatest(a, b)

    def bucket(self, moment: ColumnElement[Any], seconds: int) -> ColumnElement[Any]:
        epoch = func.extract("epoch", moment)
        return type_coerce(func.to_timestamp(func.floor(epoch / seconds) * seconds), Timestamp())

    def insert(self, table: Table) -> Any:
        return postgresql.insert(table)

    def first_if(self, ordered: Any, condition: ColumnElement[bool]) -> Any:
        # PostgreSQL tests it once (a one-time filter) and plans LIMIT 1 as a walk of the claim
        # index; an expression in LIMIT would make it plan for many rows (a sort of the backlog).
        return ordered.where(condition).limit(1)

    def json_rows(self, array: ColumnElement[Any]) -> tuple[Any, ColumnElement[Any], ColumnElement[Any]]:
        elements = func.jsonb_array_elements(cast(array, postgresql.JSONB()))
        rows = elements.table_valued("value", with_ordinality="position").render_derived("item")
        return rows, rows.c.position, rows.c.value

    def json_element_json(self, rows: Any, array: ColumnElement[Any]) -> ColumnElement[Any]:
        value: ColumnElement[Any] = rows.c.value  # jsonb, exact
        return value

    def seat_lock(self) -> ColumnElement[Any] | None:
        # Before the claim's statement: under READ COMMITTED the next statement takes a new
        # snapshot, so the seat count it reads includes every claim committed before we got the
        # lock. A transaction-level lock cannot leak from a pooled connection.
        return func.pg_advisory_xact_lock(bindparam("w_key", type_=BigInteger()))

    def wake_up(self) -> ColumnElement[Any] | None:
        return func.pg_notify(bindparam("w_channel", type_=String()), bindparam("w_queue", type_=String()))

    def read_only_reason(self) -> ColumnElement[Any]:
        # A standby answers reads, and refuses every write with "read-only transaction".
        return case(
            (func.pg_is_in_recovery(), literal("it is a standby (in recovery), not the primary")),
            (
                func.current_setting("transaction_read_only") == "on",
                literal("default_transaction_read_only is on"),
            ),
            else_=null(),
        )

    def backup(self, engine: Engine, path: str) -> None:
        raise PQError("pq backup copies SQLite files; for PostgreSQL use pg_dump")


def seat_lock_key(queue: str, schema: str | None) -> int:
    """A stable 64-bit advisory-lock key for one queue in one schema."""
    digest = hashlib.sha256(f"pqueue:{schema or ''}:{queue}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def dialect_for(name: str) -> SQLDialect:
    """The dialect object for an engine's dialect name."""
    if name == "postgresql":
        return PostgresDialect()
    if name == "sqlite":
        return SQLDialect()
    raise ValueError(f"pqueue supports sqlite and postgresql, not {name}")
