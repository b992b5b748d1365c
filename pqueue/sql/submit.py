"""Submitting: a keyed job's insert (it may conflict), and runs of keyless jobs, each run one JSON
array unpacked by one INSERT … SELECT, with the creation events.

A keyless run is stored in statements of different shapes, side by side below:

- SQLite (`SQLitePut`): the jobs' INSERT, then one INSERT … SELECT of their events: two statements.
- PostgreSQL (`PostgresPut`): the events are a step of the jobs' statement, and so is the wake-up
  of the run's queue when its jobs are alike: a single put is one round trip instead of three.
"""

from __future__ import annotations

import json
from functools import cached_property, partial
from typing import Any

from sqlalchemy import BigInteger, Float, Integer, bindparam, cast, func, literal, null, select, true
from sqlalchemy import Text as SQLText
from sqlalchemy.sql.elements import ColumnElement

from pqueue.direct import DirectStatement
from pqueue.schema import events, jobs
from pqueue.sql.context import Context, stored_policy
from pqueue.states import Status
from pqueue.transactions import Tx


def stamped_attempt_limit(given: ColumnElement[Any], queue: ColumnElement[Any], default: int) -> dict[str, Any]:
    """A new job's max_attempts: the one given, else its queue's stored policy, else the default
    (PQ_MAX_ATTEMPTS); and whether it was given, so claims leave a job's own limit alone."""
    limit = func.coalesce(given, stored_policy("max_attempts", queue), default)
    return {"max_attempts": limit, "max_attempts_given": given.is_not(None)}


class Put:
    """What both backends' puts share: the keyed insert and the keyless run's INSERT … SELECT."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def many(self, tx: Tx, alike: bool, params: dict[str, Any], actor: str) -> list[int]:
        """Store a run of keyless jobs (`params` as insert_many(alike) binds them) with their
        creation events by `actor`; their ids, in the run's order."""
        raise NotImplementedError

    def keyed(self, values: dict[str, Any], delay: float) -> Any:
        """INSERT of one job with an idempotency key, returning its id, or nothing when the key
        is taken: ON CONFLICT DO NOTHING, so two puts racing one key make one job and neither fails."""
        given = literal(values["max_attempts"], Integer())
        limit = stamped_attempt_limit(given, literal(values["queue"], SQLText()), self.ctx.max_attempts)
        values = {**values, **limit, "created_at": self.ctx.now, "run_after": self.ctx.in_(delay)}
        return (
            self.ctx.dialect.insert(jobs)
            .values(values)
            .on_conflict_do_nothing(index_elements=["partner", "queue", "idempotency_key"])
            .returning(jobs.c.id)
        )

    @staticmethod
    def holder_of_key(partner: str, queue: str, key: str) -> Any:
        """The id and payload digest of the job that holds the partner's key in the queue."""
        return select(jobs.c.id, jobs.c.payload_hash).where(
            jobs.c.partner == partner, jobs.c.queue == queue, jobs.c.idempotency_key == key
        )

    def insert_many(self, alike: bool) -> Any:
        """INSERT … SELECT from :w_items, a JSON array with one element per job: its payload when
        the jobs are alike (queue, priority, max_attempts, callback_url and partner are then bound
        once), else [queue, payload, priority, max_attempts, callback_url, partner]. Ids come back in the array's
        order once sorted (one statement assigns them)."""
        dialect = self.ctx.dialect
        array = bindparam("w_items", type_=SQLText())
        rows, position, item = dialect.json_rows(array)
        queue: ColumnElement[Any]
        priority: ColumnElement[Any]
        max_attempts: ColumnElement[Any]
        callback_url: ColumnElement[Any]
        partner: ColumnElement[Any]
        if alike:
            payload = dialect.json_element_json(rows, array)
            queue, callback_url, partner = (
                bindparam(f"w_{name}", type_=SQLText()) for name in ("queue", "callback_url", "partner")
            )
            priority, max_attempts = (bindparam(f"w_{name}", type_=Integer()) for name in ("priority", "max_attempts"))
        else:
            field = partial(dialect.json_item, item)
            payload = dialect.json_item_json(item, 1)
            queue, priority, max_attempts, callback_url, partner = field(0), field(2), field(3), field(4), field(5)
        values = {
            "queue": queue,
            "payload": payload,
            "payload_hash": literal(""),  # the digest only serves idempotency keys
            "status": literal(Status.UNPROCESSED.value),
            "priority": cast(priority, Integer()),
            **stamped_attempt_limit(cast(max_attempts, Integer()), queue, self.ctx.max_attempts),
            "callback_url": callback_url,
            "partner": partner,
            "created_at": self.ctx.now,
            "run_after": dialect.add_seconds(self.ctx.now, bindparam("w_delay", type_=Float())),
        }
        chosen = select(*values.values()).select_from(rows).order_by(position)
        return jobs.insert().from_select(list(values), chosen).returning(jobs.c.id)

    def created_events(self, job_id: ColumnElement[Any]) -> tuple[list[str], Any]:
        """(columns, SELECT) of the creation event of each job_id, by the actor bound as :w_actor."""
        values = {
            "job_id": job_id,
            "from_status": null(),
            "to_status": literal(Status.UNPROCESSED.value),
            "at": self.ctx.now,
            "actor": bindparam("w_actor", type_=SQLText()),
            "message": null(),
        }
        return list(values), select(*values.values())


class SQLitePut(Put):
    """The jobs' INSERT, then their events' INSERT … SELECT from the new ids."""

    def many(self, tx: Tx, alike: bool, params: dict[str, Any], actor: str) -> list[int]:
        statement = self._alike if alike else self._mixed
        ids = sorted(row.id for row in statement.run(tx.conn, params))
        self._created.run(tx.conn, {"w_ids": json.dumps(ids, separators=(",", ":")), "w_actor": actor})
        return ids

    @cached_property
    def _alike(self) -> DirectStatement:
        return self.ctx.direct(self.insert_many(alike=True))

    @cached_property
    def _mixed(self) -> DirectStatement:
        return self.ctx.direct(self.insert_many(alike=False))

    @cached_property
    def _created(self) -> DirectStatement:
        """The creation event of each job in :w_ids (a JSON array)."""
        rows, _, job_id = self.ctx.dialect.json_rows(bindparam("w_ids", type_=SQLText()))
        columns, values = self.created_events(cast(job_id, BigInteger()))
        return self.ctx.direct(events.insert().from_select(columns, values.select_from(rows)))


class PostgresPut(Put):
    """One statement: WITH steps write the events and, for alike jobs, wake the queue's consumers."""

    def many(self, tx: Tx, alike: bool, params: dict[str, Any], actor: str) -> list[int]:
        statement = self._alike if alike else self._mixed
        bound = {**params, "w_actor": actor, "w_channel": tx.channel}
        ids = sorted(row.id for row in statement.run(tx.conn, bound))
        if alike:
            tx.woke(params["w_queue"])
        return ids

    def _with_events(self, alike: bool) -> Any:
        inserted_ids = self.insert_many(alike).cte("inserted")
        created = events.insert().from_select(*self.created_events(inserted_ids.c.id)).cte("created")
        statement = select(inserted_ids.c.id).add_cte(created)
        wake = self.ctx.dialect.wake_up()
        if alike and wake is not None:  # a CTE with a volatile call runs once, and only if it is used
            woke = select(wake.label("woke")).cte("woke")
            statement = statement.select_from(inserted_ids.join(woke, true()))
        return statement

    @cached_property
    def _alike(self) -> DirectStatement:
        return self.ctx.direct(self._with_events(alike=True))

    @cached_property
    def _mixed(self) -> DirectStatement:
        return self.ctx.direct(self._with_events(alike=False))


SHAPES: dict[str, type[Put]] = {"sqlite": SQLitePut, "postgresql": PostgresPut}
