"""Seeding 100,000 jobs quickly for the query-bound test.

put_items costs about a millisecond per job (one INSERT and one event row each), which is minutes
for this many, so the rows are written with one executemany through pqueue's own table
definitions. Nothing here is how programs write jobs; it only fills the table.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import func, select

from pqueue import PersistentQ, Status
from pqueue.schema import events, jobs
from pqueue.store import payload_hash

# Spread over the states the page counts; finished ones finished within the last hour.
MIX = [Status.PROCESSED] * 5 + [Status.UNPROCESSED] * 2 + [Status.CRASHED, Status.MANUAL_INTERVENTION, Status.CANCELLED]


def _job(n: int, now: Any) -> dict[str, Any]:
    status = MIX[n % len(MIX)]
    created = now - timedelta(seconds=3000 - n * 0.02)
    payload = {"vendor": f"vendor-{n % 97}", "readings": [n % 13, n % 7], "n": n}
    finished = created + timedelta(seconds=1 + n % 20) if status != Status.UNPROCESSED else None
    return {
        "queue": "default" if n % 10 else "reports",
        "payload": payload,
        "payload_hash": payload_hash(payload),
        "status": status.value,
        "priority": 0,
        "attempts": 0 if status == Status.UNPROCESSED else 1,
        "max_attempts": 3,
        "lease_id": 0 if status == Status.UNPROCESSED else 1,
        "error": "ValueError: bad reading" if status in (Status.CRASHED, Status.MANUAL_INTERVENTION) else None,
        "result": {"outliers": []} if status == Status.PROCESSED else None,
        "created_at": created,
        "run_after": created,
        "started_at": created if finished else None,
        "finished_at": finished,
    }


def seed_many(store: PersistentQ, count: int, batch: int = 10_000) -> None:
    """count jobs, and an event for each that finished, in batches of one transaction each."""
    now = store.now()
    for start in range(0, count, batch):
        rows = [_job(n, now) for n in range(start, min(count, start + batch))]
        with store.engine.begin() as conn:
            before = conn.execute(select(func.coalesce(func.max(jobs.c.id), 0))).scalar_one()
            conn.execute(jobs.insert(), rows)  # a plain executemany: no RETURNING, one statement
            ids = conn.execute(select(jobs.c.id).where(jobs.c.id > before).order_by(jobs.c.id)).scalars().all()
            finished = [
                {
                    "job_id": job_id,
                    "from_status": "under_process",
                    "to_status": row["status"],
                    "at": row["finished_at"],
                    "actor": "seed",
                    "message": None,
                }
                for job_id, row in zip(ids, rows, strict=True)
                if row["finished_at"] is not None
            ]
            conn.execute(events.insert(), finished)
