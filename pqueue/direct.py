"""Hot statements run straight on the driver's cursor.

A busy consumer runs the same four or five statements for every job. Through
``Connection.execute`` each one costs about 50 µs of SQLAlchemy bookkeeping (execution
context, parameter processing, result metadata, events), as much as SQLite takes to run it.
A DirectStatement is compiled once and keeps what SQLAlchemy would apply each time (the bind
and result conversions of its column types), so the SQL, its types and its errors stay the
ones SQLAlchemy Core defines; only the per-call machinery is skipped. The statements
themselves are built in ``pqueue/sql/``.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import Connection, Dialect
from sqlalchemy.exc import DBAPIError, StatementError

Processor = Callable[[Any], Any]


class DirectStatement:
    """One Core statement, compiled for one dialect, run on the DBAPI cursor."""

    def __init__(self, statement: Any, dialect: Dialect) -> None:
        compiled = statement.compile(dialect=dialect)
        if "POSTCOMPILE" in compiled.string:
            raise ValueError("a direct statement cannot expand parameters at run time")
        self.sql: str = compiled.string
        self._dialect = dialect
        escaped = compiled.escaped_bind_names or {}
        processors: dict[str, Processor] = {}
        for name, bind in compiled.binds.items():
            process = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if process is not None:
                processors[escaped.get(name, name)] = process
        # Values the statement fixes itself (literals, limits), converted once.
        defaults = dict(compiled.params)
        for name, value in defaults.items():
            if value is not None and name in processors:
                defaults[name] = processors[name](value)
        self._defaults = defaults
        self._processors = processors
        self._positions: tuple[str, ...] | None = compiled.positiontup
        columns = list(statement.exported_columns)
        self._results = [column.type.dialect_impl(dialect).result_processor(dialect, None) for column in columns]
        self._row = namedtuple("DirectRow", [column.name for column in columns], rename=True)  # type: ignore[misc]

    def run(self, conn: Connection, params: Mapping[str, Any]) -> list[Any]:
        """Execute in conn's transaction; the rows it returns, converted as SQLAlchemy would."""
        args = self._args(params)
        cursor = conn.connection.cursor()
        try:
            cursor.execute(self.sql, args)
            return self._rows(cursor)
        except self._dialect.loaded_dbapi.Error as exc:
            raise self._wrapped(conn, exc, cursor, args) from exc
        finally:
            cursor.close()

    def _args(self, params: Mapping[str, Any]) -> Any:
        values = dict(self._defaults)
        for name, value in params.items():
            process = self._processors.get(name)
            values[name] = process(value) if process is not None and value is not None else value
        return values if self._positions is None else tuple(values[name] for name in self._positions)

    def _rows(self, cursor: Any) -> list[Any]:
        if not self._results:  # (psycopg builds cursor.description anew on every look)
            return []
        fetched = cursor.fetchall()
        results = self._results
        return [self._row(*[v if p is None else p(v) for p, v in zip(results, raw, strict=True)]) for raw in fetched]

    def first(self, conn: Connection, params: Mapping[str, Any]) -> Any | None:
        rows = self.run(conn, params)
        return rows[0] if rows else None

    def _wrapped(self, conn: Connection, exc: Any, cursor: Any, args: Any) -> StatementError:
        """The SQLAlchemy error Connection.execute would raise; a dead connection is invalidated
        so the pool replaces it."""
        lost = self._dialect.is_disconnect(exc, conn.connection.dbapi_connection, cursor)
        if lost:
            conn.invalidate(exc)
        base: type[Exception] = self._dialect.loaded_dbapi.Error
        error: StatementError = DBAPIError.instance(
            self.sql, args, exc, base, connection_invalidated=lost, dialect=self._dialect
        )
        return error
