"""/metrics counts the waiting jobs consumers hold to start next in their seats (PQ_CLAIM_AHEAD),
per queue, from real holds made through the library."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from pqueue import PersistentQ, Status
from producer.metrics import IntakeMetrics


def store_of(app: FastAPI) -> PersistentQ:
    store: PersistentQ = app.state.intake.store
    return store


def hold_one(store: PersistentQ, queue: str) -> tuple[int, int]:
    """Two jobs in the queue: the first runs, its consumer holds the second; (running id, lease)."""
    for n in range(2):
        store.put_item({"n": n}, queue=queue)
    running = store.get_item("worker-1", queue=queue)
    assert running is not None
    held = store.hold_next("worker-1", behind_job=running.id, behind_lease=running.lease_id, queue=queue)
    assert held is not None
    return running.id, running.lease_id


@pytest.mark.anyio
async def test_metrics__held_jobs_per_queue_counted_among_the_waiting(app: FastAPI, client: httpx.AsyncClient) -> None:
    store = store_of(app)
    running, lease = hold_one(store, "default")
    store.put_item({"n": 3}, queue="reports")

    lines = set((await client.get("/metrics")).text.splitlines())

    assert 'pq_held_jobs{queue="default"} 1.0' in lines
    assert 'pq_waiting_jobs{queue="default"} 1.0' in lines, "the held job still waits"
    assert 'pq_held_jobs{queue="reports"} 0.0' in lines

    store.update_status(running, Status.PROCESSED, lease_id=lease)  # recorded alone: the hold lapses
    lines = set((await client.get("/metrics")).text.splitlines())
    assert 'pq_held_jobs{queue="default"} 0.0' in lines


def test_metrics__a_partner_sees_only_holds_of_its_own_jobs(app: FastAPI) -> None:
    store = store_of(app)
    hold_one(store, "default")
    metrics = IntakeMetrics(store)
    assert 'pq_held_jobs{queue="default"} 1.0' in metrics.exposition(partner="default").decode().splitlines()
    assert "pq_held_jobs{" not in metrics.exposition(partner="acme").decode()
