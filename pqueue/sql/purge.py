"""Purging: finished jobs deleted, with their events and deliveries, in batches."""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, delete, func, select
from sqlalchemy.sql.elements import ColumnElement

from pqueue.schema import deliveries, events, jobs
from pqueue.sql.context import Context
from pqueue.states import DeliveryStatus, Status


class Purge:
    """The statements of a purge, for one context."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def selection(self, statuses: list[Status], older_than_seconds: float) -> ColumnElement[bool]:
        """Jobs in these statuses finished more than older_than_seconds ago, whose callback is
        not still pending."""
        pending = select(deliveries.c.id).where(
            deliveries.c.job_id == jobs.c.id, deliveries.c.status == DeliveryStatus.PENDING.value
        )
        return and_(
            jobs.c.status.in_([s.value for s in statuses]),
            jobs.c.finished_at < self.ctx.in_(-older_than_seconds),
            ~pending.exists(),
        )

    @staticmethod
    def count(selection: ColumnElement[bool]) -> Any:
        return select(func.count()).select_from(jobs).where(selection)

    @staticmethod
    def batch(selection: ColumnElement[bool], size: int) -> Any:
        """Ids of up to `size` selected jobs."""
        return select(jobs.c.id).where(selection).limit(size)

    @staticmethod
    def delete(job_ids: list[int]) -> list[Any]:
        """The jobs and what refers to them, in an order the foreign keys accept."""
        return [
            delete(events).where(events.c.job_id.in_(job_ids)),
            delete(deliveries).where(deliveries.c.job_id.in_(job_ids)),
            delete(jobs).where(jobs.c.id.in_(job_ids)),
        ]
