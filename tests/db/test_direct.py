"""Hot statements run on the driver's cursor behave as Connection.execute would: the same values
out, the same SQLAlchemy errors, and a dead connection replaced."""

from __future__ import annotations

import sqlite3
import threading
from datetime import UTC, datetime

import pytest
from sqlalchemy import bindparam, select, text
from sqlalchemy.exc import IntegrityError

from pqueue import NewJob, PersistentQ
from pqueue.direct import DirectStatement
from pqueue.errors import DatabaseBusy
from pqueue.schema import events, jobs


def test_direct_statement__returns_what_execute_returns(q: PersistentQ) -> None:
    q.put_items([NewJob({"nested": [1, 2.5, None, "é"]}, priority=3, callback_url="http://127.0.0.1:9/cb")])
    statement = select(jobs).where(jobs.c.priority == bindparam("w_priority"))
    direct = DirectStatement(statement, q.engine.dialect)

    with q.engine.connect() as conn:
        expected = conn.execute(statement, {"w_priority": 3}).one()
        got = direct.first(conn, {"w_priority": 3})

    assert got is not None
    assert tuple(got) == tuple(expected)
    assert got._fields == tuple(expected._fields)
    assert isinstance(got.created_at, datetime) and got.created_at.tzinfo == UTC
    assert got.payload == {"nested": [1, 2.5, None, "é"]}


def test_direct_statement__converts_parameters_by_their_column_type(q: PersistentQ) -> None:
    job_id = q.put_item("x")
    moment = datetime(2031, 5, 6, 7, 8, 9, 123000, tzinfo=UTC)
    statement = (
        jobs.update()
        .where(jobs.c.id == bindparam("w_id"))
        .values(
            run_after=bindparam("w_at", type_=jobs.c.run_after.type),
            result=bindparam("w_result", type_=jobs.c.result.type),
        )
        .returning(jobs.c.run_after, jobs.c.result)
    )
    direct = DirectStatement(statement, q.engine.dialect)

    with q.engine.begin() as conn:
        row = direct.first(conn, {"w_id": job_id, "w_at": moment, "w_result": {"a": [1, "b"]}})

    assert row is not None and (row.run_after, row.result) == (moment, {"a": [1, "b"]})
    stored = q.get_job(job_id)
    assert (stored.run_after, stored.result) == (moment, {"a": [1, "b"]})


def test_direct_statement__raises_sqlalchemy_errors_and_the_transaction_rolls_back(q: PersistentQ) -> None:
    insert_event = (
        events.insert()
        .inline()
        .values(job_id=bindparam("w_job"), to_status="processed", at=datetime.now(UTC), actor="t")
    )
    direct = DirectStatement(insert_event, q.engine.dialect)
    job_id = q.put_item("x")
    before = len(q.events(job_id))

    with pytest.raises(IntegrityError), q.engine.begin() as conn:
        direct.run(conn, {"w_job": job_id})  # a real row first
        direct.run(conn, {"w_job": 10**9})  # no such job: the foreign key fails

    assert len(q.events(job_id)) == before  # the first insert went with the transaction


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_direct_statement__a_killed_connection_is_invalidated_and_replaced(q: PersistentQ) -> None:
    q.put_items([NewJob(n) for n in range(2)])
    with q.engine.connect() as killer:  # held open, so the doomed connection is another one
        with q.engine.connect() as doomed:
            doomed_pid = doomed.execute(text("SELECT pg_backend_pid()")).scalar_one()
        killer.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": doomed_pid})

    # The dead connection is used again at once (no idle ping): the claim fails once as
    # "unreachable", and the pool hands out a new connection for the next try.
    outcomes: list[str] = []
    for _ in range(2):
        try:
            claimed = q.get_item("w")
            outcomes.append(f"claimed {claimed.payload}" if claimed else "nothing")
        except DatabaseBusy:
            outcomes.append("busy")
    assert outcomes in (["busy", "claimed 0"], ["claimed 0", "claimed 1"])


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_locked_sqlite__a_writer_waits_for_the_lock_and_then_claims(q: PersistentQ) -> None:
    """BEGIN IMMEDIATE runs on the driver's connection; "database is locked" still reaches the retry."""
    q.put_item("waiting")
    other = sqlite3.connect(q.engine.url.database or "", isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    release = threading.Timer(0.3, lambda: other.execute("ROLLBACK"))
    release.start()
    try:
        claimed = q.get_item("w")
    finally:
        release.join()
        other.close()
    assert claimed is not None and claimed.payload == "waiting"
