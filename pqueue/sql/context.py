"""What every statement is built from: the backend's clauses, the database's clock, the defaults."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Dialect, select
from sqlalchemy.sql.elements import ColumnElement

from pqueue.dialects import SQLDialect
from pqueue.direct import DirectStatement
from pqueue.schema import jobs, queues


def stored_policy(column: str, queue: ColumnElement[Any] = jobs.c.queue) -> ColumnElement[Any]:
    """The queue's stored policy value `column` (NULL where none is), read inside the statement
    that needs it: by default for the queue of the job row at hand."""
    return select(queues.c[column]).where(queues.c.name == queue).scalar_subquery()


@dataclass(frozen=True)
class Context:
    """One store's statement-building context at one clock offset."""

    dialect: SQLDialect  # pqueue's: the clauses that differ between SQLite and PostgreSQL
    compiler: Dialect  # SQLAlchemy's, which direct statements are compiled for
    now: ColumnElement[Any]  # the database's clock plus the store's clock_offset
    max_running: int  # a queue's seats unless set (PQ_MAX_RUNNING)
    max_attempts: int  # a job's attempts unless set (PQ_MAX_ATTEMPTS)

    def in_(self, seconds: float) -> ColumnElement[Any]:
        """`seconds` after now (before it when negative)."""
        return self.dialect.add_seconds(self.now, seconds)

    def direct(self, statement: Any) -> DirectStatement:
        """A hot statement, compiled once to run on the driver's cursor (see direct.py)."""
        return DirectStatement(statement, self.compiler)
