"""Rows as an earlier revision's code stored them, for the tests that upgrade from it."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine

from pqueue.models import JSON
from pqueue.schema import jobs


def put_as_first_revision(engine: Engine, payload: JSON, *, queue: str = "default", priority: int = 0) -> int:
    """A waiting job as the first revision's code stored it: only the columns 0001 has (today's
    put_item writes columns of later revisions)."""
    now = datetime.now(UTC)
    values = {"queue": queue, "payload": payload, "payload_hash": "", "status": "unprocessed"}
    stmt = jobs.insert().values(**values, priority=priority, max_attempts=3, created_at=now, run_after=now)
    with engine.begin() as conn:
        return int(conn.execute(stmt.returning(jobs.c.id)).scalar_one())
