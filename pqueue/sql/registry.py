"""The registries: each queue's seats and pause flag, and the workers (consumers, relays) alive."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, update

from pqueue.schema import queues, workers
from pqueue.sql.context import Context


class Registry:
    """The statements that write pq_queues and pq_workers, for one context."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def set_queue(self, queue: str, values: dict[str, Any], *, keep_stored: bool = False) -> Any:
        """Store the queue's settings (seats, paused, policy), creating its row on first use;
        with keep_stored, only those not stored yet."""
        dialect = self.ctx.dialect
        insert = dialect.insert(queues).values(name=queue, **values)
        if keep_stored:
            values = {name: func.coalesce(queues.c[name], insert.excluded[name]) for name in values}
        return dialect.upsert_values(insert, ["name"], values)

    def register(self, worker_id: str, about: dict[str, Any]) -> Any:
        """The worker's row (kind, queue, host, pid), seen and started now; replaced if it is there."""
        now = self.ctx.now
        values = {**about, "started_at": now, "last_seen": now}
        dialect = self.ctx.dialect
        return dialect.upsert_values(dialect.insert(workers).values(id=worker_id, **values), ["id"], values)

    def touch(self, worker_id: str) -> Any:
        """The worker seen now; returns its id if it is registered."""
        return update(workers).where(workers.c.id == worker_id).values(last_seen=self.ctx.now).returning(workers.c.id)

    @staticmethod
    def unregister(worker_id: str) -> Any:
        return delete(workers).where(workers.c.id == worker_id)

    def forget(self, older_than_seconds: float) -> Any:
        """Workers not seen for this long (they died without unregistering)."""
        return delete(workers).where(workers.c.last_seen < self.ctx.in_(-older_than_seconds))
