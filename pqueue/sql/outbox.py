"""The callback outbox: a final outcome's delivery, queued in the outcome's transaction; the
delivery loop's claim of due deliveries (locked so two consumers never send one at once) and its
record of each attempt (fenced by who holds the delivery)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import or_, select, update

from pqueue.schema import deliveries
from pqueue.sql.context import Context
from pqueue.states import DeliveryStatus


class Outbox:
    """The statements of pq_deliveries, for one context."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def queue(self, job: Any, body: str) -> Any:
        """A pending delivery of the job row's outcome (`body`) to its callback_url, due now; returns its id."""
        now = self.ctx.now
        return (
            deliveries.insert()
            .values(
                job_id=job.id,
                lease_id=job.lease_id,
                url=job.callback_url,
                body=body,
                status=DeliveryStatus.PENDING.value,
                created_at=now,
                next_attempt_at=now,
            )
            .returning(deliveries.c.id)
        )

    def due(self, limit: int) -> Any:
        """Ids of pending deliveries that are due and not locked, oldest first, row-locked
        (PostgreSQL skips those another consumer is claiming)."""
        now = self.ctx.now
        return (
            select(deliveries.c.id)
            .where(
                deliveries.c.status == DeliveryStatus.PENDING.value,
                deliveries.c.next_attempt_at <= now,
                or_(deliveries.c.locked_until.is_(None), deliveries.c.locked_until < now),
            )
            .order_by(deliveries.c.next_attempt_at, deliveries.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )

    def lock(self, delivery_ids: list[int], worker_id: str, lock_seconds: float) -> Any:
        """The deliveries held by the worker for lock_seconds; returns their rows."""
        return (
            update(deliveries)
            .where(deliveries.c.id.in_(delivery_ids))
            .values(locked_by=worker_id, locked_until=self.ctx.in_(lock_seconds))
            .returning(*deliveries.c)
        )

    def record(
        self,
        delivery_id: int,
        held_by: str | None,
        *,
        delivered: bool,
        status_code: int | None,
        error: str | None,
        retry_in_seconds: float | None,
    ) -> Any:
        """One attempt's outcome: delivered; or due again after retry_in_seconds; or (None)
        undeliverable. The lock is let go; with held_by, only while that worker holds it."""
        now = self.ctx.now
        values: dict[str, Any] = {
            "attempts": deliveries.c.attempts + 1,
            "last_status_code": status_code,
            "last_error": error,
            "last_attempt_at": now,
            "locked_by": None,
            "locked_until": None,
        }
        if delivered:
            values.update(status=DeliveryStatus.DELIVERED.value, delivered_at=now, last_error=None)
        elif retry_in_seconds is not None:
            values.update(next_attempt_at=self.ctx.in_(retry_in_seconds))
        else:
            values.update(status=DeliveryStatus.UNDELIVERABLE.value)
        held = [] if held_by is None else [deliveries.c.locked_by == held_by]
        return update(deliveries).where(deliveries.c.id == delivery_id, *held).values(**values).returning(*deliveries.c)

    def again(self, delivery_id: int) -> Any:
        """The delivery pending again, due now, with fresh attempts (an operator's redeliver)."""
        return (
            update(deliveries)
            .where(deliveries.c.id == delivery_id)
            .values(
                status=DeliveryStatus.PENDING.value,
                attempts=0,
                next_attempt_at=self.ctx.now,
                locked_by=None,
                locked_until=None,
            )
        )

    @staticmethod
    def one(delivery_id: int) -> Any:
        return select(deliveries).where(deliveries.c.id == delivery_id)

    @staticmethod
    def exists(delivery_id: int) -> Any:
        return select(deliveries.c.id).where(deliveries.c.id == delivery_id)

    @staticmethod
    def latest(job_id: int) -> Any:
        """The job's latest delivery."""
        return select(deliveries).where(deliveries.c.job_id == job_id).order_by(deliveries.c.id.desc()).limit(1)
