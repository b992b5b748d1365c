"""Hot statements run straight on the driver's cursor.

A busy consumer runs the same four or five statements for every job. Through
``Connection.execute`` each one costs about 50 µs of SQLAlchemy bookkeeping (execution
context, parameter processing, result metadata, events), as much as SQLite takes to run it.
A DirectStatement is compiled once and keeps what SQLAlchemy would apply each time (the bind
and result conversions of its column types), so the SQL, its types and its errors stay the
ones SQLAlchemy Core defines; only the per-call machinery is skipped. The statements
themselves are built in ``pqueue/sql/``.

The constants SQLAlchemy would bind (a LIMIT 1, a COALESCE's default, a status compared with)
are written into the SQL instead. SQLite then matches them against partial indexes and folds them
when it plans: the fair share's pick of the claim took 130 µs with them bound, 10 µs written in.
PostgreSQL plans a prepared statement anew for every call until a generic plan (one for all
parameter values) is estimated as cheap as the custom ones, and a bound LIMIT is estimated as a
tenth of the table: with its constants bound the claim was planned on every call (0.6–0.8 ms,
more than it takes to run), with them written in it is planned once per connection. There the
parameters are numbered ($1, $2, …) and sent on psycopg's raw cursor, so psycopg does not parse
the SQL again on every call (it keeps the parse of a statement up to 4 KB only: the claim's,
longer, took 0.1–0.25 ms of CPU per call).
"""

from __future__ import annotations

import copy
import typing
from collections import namedtuple
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Dialect, cast, literal_column
from sqlalchemy.exc import DBAPIError, StatementError
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import BindParameter, ColumnElement

Processor = Callable[[Any], Any]


class DirectStatement:
    """One Core statement, compiled for one dialect, run on the DBAPI cursor."""

    def __init__(self, statement: Any, dialect: Dialect) -> None:
        self._raw = dialect.driver == "psycopg"
        # psycopg only where the engine already loaded it: a SQLite program never imports it
        # (about 10 MiB and 45 ms of every start).
        self._raw_cursor: Callable[[Any], Any] | None = _psycopg_raw_cursor() if self._raw else None
        compiled = compile_direct(statement, dialect, numbered=self._raw)
        if "POSTCOMPILE" in compiled.string:
            raise ValueError("a direct statement cannot expand parameters at run time")
        self.sql: str = compiled.string
        self._dialect = dialect
        escaped: Mapping[str, str] = compiled.escaped_bind_names or {}
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
        self._positions: Sequence[str] | None = compiled.positiontup
        columns = list(statement.exported_columns)
        self._results = [column.type.dialect_impl(dialect).result_processor(dialect, None) for column in columns]
        self._row = namedtuple("DirectRow", [column.name for column in columns], rename=True)  # type: ignore[misc]

    def run(self, conn: Connection, params: Mapping[str, Any]) -> list[Any]:
        """Execute in conn's transaction; the rows it returns, converted as SQLAlchemy would."""
        args = self._args(params)
        dbapi = conn.connection
        raw = self._raw_cursor
        cursor: Any = raw(typing.cast(Any, dbapi.dbapi_connection)) if raw is not None else dbapi.cursor()
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


def _psycopg_raw_cursor() -> Callable[[Any], Any]:
    import psycopg

    return psycopg.RawCursor


def compile_direct(statement: Any, dialect: Dialect, numbered: bool) -> SQLCompiler:
    """The statement compiled for a DirectStatement: its constants written in and, for psycopg's
    raw cursor, its parameters numbered."""
    if numbered:
        dialect = copy.copy(dialect)  # keeps what the engine learnt of its server
        dialect.paramstyle, dialect.positional = "numeric_dollar", True
        dialect.identifier_preparer = dialect.preparer(dialect)
    return constants_written(dialect)(dialect, statement)


def constants_written(dialect: Dialect) -> type[SQLCompiler]:
    """The dialect's statement compiler, writing each parameter whose value is already known (a
    constant SQLAlchemy made a parameter of) into the SQL as a literal; the parameters the caller
    names (`bindparam("w_…")`, with no value) stay bound. PostgreSQL's literal carries the
    parameter's type (a CAST); SQLite's is bare, as a partial index's condition is written."""
    base: type[SQLCompiler] = dialect.statement_compiler
    typed = dialect.name == "postgresql"

    class ConstantsWritten(base):  # type: ignore[valid-type, misc]
        def visit_bindparam(self, bindparam: BindParameter[Any], **kw: Any) -> str:
            if bindparam.value is not None and bindparam.callable is None:
                render = bindparam.type.dialect_impl(self.dialect).literal_processor(self.dialect)
                if render is not None:
                    written: ColumnElement[Any] = literal_column(render(bindparam.value))
                    text: str = self.process(cast(written, bindparam.type) if typed else written, **kw)
                    return text
            return str(super().visit_bindparam(bindparam, **kw))

    return ConstantsWritten
