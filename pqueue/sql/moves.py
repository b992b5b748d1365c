"""Moves: the fenced UPDATE every transition runs, its event row, and the statements of a running
job's life (the lease's renewal, the processed outcome, the leases rescue finds expired).

Every transition is one `UPDATE … WHERE id = :w_id AND status = :w_from [AND lease_id = :w_lease]`
built from a `Move` (pqueue/states.py), plus its event row. The processed outcome, which every
job reaches, has a statement of its own in two shapes, side by side below:

- SQLite (`SQLiteMoves`): the fenced UPDATE, then the event row: two statements.
- PostgreSQL (`PostgresMoves`): the event row is a step of the UPDATE's statement, and when the
  transaction goes on to claim from a queue (finish_and_claim), so is that queue's seat lock:
  one round trip.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

from sqlalchemy import Float, bindparam, cast, func, literal, or_, select, update
from sqlalchemy.sql.elements import ColumnElement

from pqueue.direct import DirectStatement
from pqueue.schema import events, fair, jobs
from pqueue.sql.context import Context, stored_policy
from pqueue.sql.fair import FairShare
from pqueue.states import CLAIMABLE, NOW, FromNow, Minus, Move, Status
from pqueue.transactions import Tx

EVENT_COLUMNS = ["job_id", "from_status", "to_status", "at", "actor", "message"]


def with_event(ctx: Context, moved: Any, from_status: ColumnElement[Any], message: ColumnElement[Any]) -> Any:
    """PostgreSQL: the moved rows of a DML CTE, with their event rows written by the same
    statement (one round trip instead of two)."""
    actor = func.coalesce(moved.c.worker_id, "worker")
    values = select(moved.c.id, from_status, moved.c.status, ctx.now, actor, message)
    event = events.insert().from_select(EVENT_COLUMNS, values).cte("event")
    return select(*(column for column in moved.c if column.name != "from_status")).add_cte(event)


def queue_backoff() -> Any:
    """The job's queue's stored retry backoff (NULL: the program's PQ_RETRY_BACKOFF_SECONDS), read
    with the job: a failed attempt waits by the policy as it is now, on whichever host records it."""
    return stored_policy("retry_backoff_seconds").label("queue_backoff")


def queue_attempt_limit() -> Any:
    """The job's queue's stored max_attempts as it is now (NULL: none stored), read with the job:
    a failed attempt is judged by the limit an operator set while it ran, not the one its claim
    copied in (rows.attempt_limit_of)."""
    return stored_policy("max_attempts").label("queue_max_attempts")


def policy_columns() -> tuple[Any, ...]:
    """What deciding a failed attempt reads beside the job: its queue's stored policy."""
    return queue_backoff(), queue_attempt_limit(), stored_policy("timeout_retries").label("queue_timeout_retries")


class Moves:
    """The statements of transitions, for one context."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.fair = FairShare(ctx)
        self._updates: dict[tuple[bool, frozenset[tuple[str, Any]]], Any] = {}

    def processed(self, tx: Tx, job_id: int, lease_id: int, result: Any) -> Any | None:
        """The fenced move of the job the lease holds to processed, with its event row: the row
        (every column), or None when the lease no longer holds the job."""
        raise NotImplementedError

    @cached_property
    def locked_job(self) -> Any:
        """The job :w_id, locked until the transaction ends (FOR UPDATE on PostgreSQL; on SQLite
        the transaction holds the write lock): what it shows stays true until the UPDATE. With
        its queue's stored retry backoff and attempt limit, which a failure spends."""
        return select(jobs, *policy_columns()).where(jobs.c.id == bindparam("w_id")).with_for_update()

    def update(self, job_id: int, from_status: Status, move: Move, lease_id: int | None) -> tuple[Any, dict[str, Any]]:
        """(statement, parameters) of the move's fenced UPDATE, returning the row; the statement
        is built once per shape of the move (which columns, set how)."""
        params: dict[str, Any] = {"w_id": job_id, "w_from": from_status.value, "w_to": move.target.value}
        if lease_id is not None:
            params["w_lease"] = lease_id
        shape: list[tuple[str, Any]] = []
        for key, value in move.values.items():
            if isinstance(value, FromNow):
                params[f"v_{key}"] = value.seconds
                shape.append((key, FromNow))
            elif value is NOW or isinstance(value, Minus):
                shape.append((key, value))
            else:
                params[f"v_{key}"] = value
                shape.append((key, None))
        name = (lease_id is not None, frozenset(shape))
        statement = self._updates.get(name)
        if statement is None:
            statement = self._updates[name] = self._update(move, fenced_by_lease=lease_id is not None)
        return statement, params

    def _update(self, move: Move, fenced_by_lease: bool) -> Any:
        # Bound names must differ from column names in an UPDATE, hence the w_ and v_ prefixes.
        conditions = [jobs.c.id == bindparam("w_id"), jobs.c.status == bindparam("w_from")]
        if fenced_by_lease:
            conditions.append(jobs.c.lease_id == bindparam("w_lease"))
        assignments: dict[str, Any] = {"status": bindparam("w_to")}
        for key, value in move.values.items():
            if isinstance(value, FromNow):
                assignments[key] = self.ctx.dialect.add_seconds(self.ctx.now, bindparam(f"v_{key}", type_=Float()))
            elif value is NOW:
                assignments[key] = self.ctx.now
            elif isinstance(value, Minus):
                assignments[key] = jobs.c[key] - value.amount
            else:
                assignments[key] = bindparam(f"v_{key}", type_=jobs.c[key].type)
        return update(jobs).where(*conditions).values(**assignments).returning(*jobs.c)

    def write_event(
        self, tx: Tx, job_id: int, from_status: Status | None, to_status: Status, actor: str, message: str | None
    ) -> None:
        """The event row of one move."""
        row = {
            "w_job": job_id,
            "w_from": from_status.value if from_status else None,
            "w_to": to_status.value,
            "w_actor": actor,
            "w_message": message,
        }
        self._event.run(tx.conn, row)

    @cached_property
    def _event(self) -> DirectStatement:
        return self.ctx.direct(
            events.insert()
            .inline()  # no implicit RETURNING of the new id on PostgreSQL: nobody reads it
            .values(
                job_id=bindparam("w_job"),
                from_status=bindparam("w_from"),
                to_status=bindparam("w_to"),
                at=self.ctx.now,
                actor=bindparam("w_actor"),
                message=bindparam("w_message"),
            )
        )

    def renewal(
        self, job_id: int, lease_id: int, lease_seconds: float | None, default: float, agent_status: str | None = None
    ) -> Any:
        """The lease's new end, fenced by the lease; returns it with any stop request.

        Without lease_seconds the lease is renewed for the length its claim was given (else
        `default`); with it, that length is also recorded, so a rescuer waits out the same one.
        With agent_status, the agents' word for the claim is recorded too."""
        fenced = (
            update(jobs)
            .where(jobs.c.id == job_id, jobs.c.lease_id == lease_id, jobs.c.status == Status.UNDER_PROCESS.value)
            .returning(jobs.c.lease_expires_at, jobs.c.stop_request, jobs.c.stop_reason)
        )
        if agent_status is not None:
            fenced = fenced.values(agent_status=agent_status)
        if lease_seconds is not None:
            return fenced.values(lease_expires_at=self.ctx.in_(lease_seconds), lease_ms=int(lease_seconds * 1000))
        claimed = func.coalesce(cast(jobs.c.lease_ms, Float()) / 1000.0, default)
        return fenced.values(lease_expires_at=self.ctx.dialect.add_seconds(self.ctx.now, claimed))

    def expired(self, margin: float) -> Any:
        """Running jobs whose lease ended more than `margin` seconds ago, locked (PostgreSQL skips
        those another rescuer holds), each with its queue's stored retry backoff and attempt limit."""
        return (
            select(jobs, *policy_columns())
            .where(jobs.c.status == Status.UNDER_PROCESS.value, jobs.c.lease_expires_at < self.ctx.in_(-margin))
            .order_by(jobs.c.id)
            .with_for_update(skip_locked=True)
        )

    @staticmethod
    def over_limit(queue: str, limit: int) -> Any:
        """The queue's waiting jobs that follow its attempt limit (no limit of their own) and have
        already spent `limit` attempts, locked: a lowered limit ends them before another claim."""
        waiting = jobs.c.status.in_([status.value for status in CLAIMABLE])
        follows_queue = or_(jobs.c.max_attempts_given.is_(None), jobs.c.max_attempts_given == False)  # noqa: E712
        return (
            select(jobs)
            .where(jobs.c.queue == queue, waiting, follows_queue, jobs.c.attempts >= limit)
            .order_by(jobs.c.id)
            .with_for_update()
        )

    def lease_stamps(self) -> Any:
        """Every running job's (id, lease_id, lease_expires_at): what a heartbeat changes; and its
        claim's lease length (lease_ms)."""
        return select(jobs.c.id, jobs.c.lease_id, jobs.c.lease_expires_at, jobs.c.lease_ms).where(
            jobs.c.status == Status.UNDER_PROCESS.value
        )

    def _processed_update(self) -> Any:
        """The fenced UPDATE of the job :w_id, held by lease :w_lease, to processed with :v_result."""
        return (
            update(jobs)
            .where(
                jobs.c.id == bindparam("w_id"),
                jobs.c.status == Status.UNDER_PROCESS.value,
                jobs.c.lease_id == bindparam("w_lease"),
            )
            .values(
                status=Status.PROCESSED.value,
                result=bindparam("v_result", type_=jobs.c.result.type),
                error=None,
                finished_at=self.ctx.now,
                lease_expires_at=None,
            )
            .returning(*jobs.c)
        )


class SQLiteMoves(Moves):
    """The processed UPDATE, then its event row."""

    def processed(self, tx: Tx, job_id: int, lease_id: int, result: Any) -> Any | None:
        row = self._processed.first(tx.conn, {"w_id": job_id, "w_lease": lease_id, "v_result": result})
        if row is not None:
            self.write_event(tx, job_id, Status.UNDER_PROCESS, Status.PROCESSED, row.worker_id or "worker", "ok")
            self.fair.charge(tx, row)
        return row

    @cached_property
    def _processed(self) -> DirectStatement:
        return self.ctx.direct(self._processed_update())


class PostgresMoves(Moves):
    """The processed UPDATE with its event row and the run's charge in one statement, and the seat
    lock of the queue the transaction claims from next (taken only when the UPDATE matched)."""

    def processed(self, tx: Tx, job_id: int, lease_id: int, result: Any) -> Any | None:
        params: dict[str, Any] = {"w_id": job_id, "w_lease": lease_id, "v_result": result}
        queue = tx.claim_expected
        if queue is None:
            return self._processed.first(tx.conn, params)
        row = self._processed_then_lock.first(tx.conn, {**params, "w_key": tx.seat_key(queue)})
        if row is not None:
            tx.seats_locked(queue)
        return row

    def _processed_with_event(self) -> Any:
        moved = self._processed_update().cte("moved")
        charged = (
            update(fair)
            .where(fair.c.queue == moved.c.queue, fair.c.partner == moved.c.partner)
            .values(**self.fair.charge_values(moved.c.queue, moved.c.partner, moved.c.started_at))
            .cte("charged")
        )
        return with_event(self.ctx, moved, literal(Status.UNDER_PROCESS.value), literal("ok")).add_cte(charged)

    @cached_property
    def _processed(self) -> DirectStatement:
        return self.ctx.direct(self._processed_with_event())

    @cached_property
    def _processed_then_lock(self) -> DirectStatement:
        lock = self.ctx.dialect.seat_lock()
        assert lock is not None, "PostgreSQL has a seat lock"
        return self.ctx.direct(self._processed_with_event().add_columns(lock.label("seats_locked")))


SHAPES: dict[str, type[Moves]] = {"sqlite": SQLiteMoves, "postgresql": PostgresMoves}
