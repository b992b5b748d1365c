"""Many jobs for the query-bound test, written through the library's batch put."""

from __future__ import annotations

from pqueue import NewJob, PersistentQ, Status

WORKER = "consumer-bulk-1"


def seed_many(store: PersistentQ, count: int, batch: int = 5000) -> None:
    """count waiting jobs in two queues, one transaction per batch."""
    for start in range(0, count, batch):
        store.put_items(
            [
                NewJob({"vendor": f"vendor-{n % 97}", "readings": [n % 13, n % 7], "n": n}, queue=_queue(n))
                for n in range(start, min(count, start + batch))
            ]
        )


def _queue(n: int) -> str:
    return "reports" if n % 10 == 0 else "default"


def run_some(store: PersistentQ, count: int) -> int:
    """Claim and finish count jobs (every tenth crashes), so the aggregates have something to
    count; returns how many were processed."""
    processed = 0
    for n in range(count):
        job = store.get_item(WORKER)
        assert job is not None
        if n % 10 == 9:
            store.update_status(job.id, Status.CRASHED, lease_id=job.lease_id, error="ValueError: bad reading")
        else:
            store.update_status(job.id, Status.PROCESSED, lease_id=job.lease_id, result={"outliers": []})
            processed += 1
    return processed
