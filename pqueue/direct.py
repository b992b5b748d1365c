"""Hot statements run straight on the driver's cursor.

A busy consumer runs the same four or five statements for every job. Through
``Connection.execute`` each one costs about 50 µs of SQLAlchemy bookkeeping (execution
context, parameter processing, result metadata, events), as much as SQLite takes to run it.
A DirectStatement is compiled once and keeps what SQLAlchemy would apply each time (the bind
and result conversions of its column types), so the SQL, its types and its errors stay the
ones SQLAlchemy Core defines; only the per-call machinery is skipped. The statements
themselves are still built in ``store.py``.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Mapping, Sequence
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
        return run_in_order(conn, [(self, params)])[0]

    def _args(self, params: Mapping[str, Any]) -> Any:
        values = dict(self._defaults)
        for name, value in params.items():
            process = self._processors.get(name)
            values[name] = process(value) if process is not None and value is not None else value
        return values if self._positions is None else tuple(values[name] for name in self._positions)

    def _rows(self, cursor: Any) -> list[Any]:
        fetched = cursor.fetchall() if cursor.description else []
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


def run_in_order(conn: Connection, steps: Sequence[tuple[DirectStatement, Mapping[str, Any]]]) -> list[list[Any]]:
    """Run statements one after the other in conn's transaction; each one's rows.

    With psycopg they go out together in pipeline mode: the server still runs them in order,
    each with its own snapshot, but the client waits for one round trip instead of one each.
    """
    driver = conn.connection.driver_connection
    together = len(steps) > 1 and hasattr(driver, "pipeline")
    calls = [(statement, statement._args(params)) for statement, params in steps]
    cursors: list[Any] = []
    current = 0  # the statement an error belongs to (in a pipeline: the first one that failed)
    try:
        if together:
            with driver.pipeline():  # type: ignore[union-attr]
                for statement, args in calls:
                    cursors.append(driver.cursor())  # type: ignore[union-attr]
                    cursors[-1].execute(statement.sql, args)
            return [statement._rows(cursor) for (statement, _), cursor in zip(calls, cursors, strict=True)]
        rows = []
        for index, (statement, args) in enumerate(calls):
            current = index
            cursors.append(conn.connection.cursor())
            cursors[-1].execute(statement.sql, args)
            rows.append(statement._rows(cursors[-1]))
        return rows
    except calls[0][0]._dialect.loaded_dbapi.Error as exc:
        statement, args = calls[current]
        raise statement._wrapped(conn, exc, cursors[current] if cursors else None, args) from exc
    finally:
        for cursor in cursors:
            cursor.close()
