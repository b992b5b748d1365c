"""A full queue answers 503 with Retry-After and stores nothing."""

from __future__ import annotations

import pytest

from tests.producer.support import AppFactory, client_for, eventually

pytestmark = pytest.mark.anyio


async def test_backpressure__full_queue_is_503_with_retry_after(make_app: AppFactory) -> None:
    app = make_app(max_queue_depth=3)
    store = app.state.intake.store
    async with client_for(app) as client:
        accepted = [(await client.post("/jobs", json={"payload": i})).status_code for i in range(3)]
        refused = await client.post("/jobs", json={"payload": "one too many"})
        batch = await client.post("/jobs/batch", json=[{"payload": "a"}])

    assert accepted == [202, 202, 202]
    assert refused.status_code == 503 and batch.status_code == 503
    assert int(refused.headers["retry-after"]) > 0
    assert "the queue is full: 3 jobs are waiting and the limit is 3" in refused.json()["detail"]
    assert store.count_items() == 3


async def test_backpressure__accepts_again_once_jobs_are_taken(make_app: AppFactory) -> None:
    app = make_app(max_queue_depth=2)
    store = app.state.intake.store
    async with client_for(app) as client:
        for i in range(2):
            await client.post("/jobs", json={"payload": i})
        assert (await client.post("/jobs", json={"payload": "x"})).status_code == 503
        assert store.get_item("worker-1") is not None  # one job leaves the waiting line

        async def accepted() -> bool:
            return (await client.post("/jobs", json={"payload": "x"})).status_code == 202

        await eventually(accepted, what="the intake to accept again")  # its depth is at most ~0.5 s old
    assert store.count_items() == 3


async def test_backpressure__batch_that_would_overflow_is_refused_whole(make_app: AppFactory) -> None:
    app = make_app(max_queue_depth=5)
    async with client_for(app) as client:
        response = await client.post("/jobs/batch", json=[{"payload": i} for i in range(6)])

    assert response.status_code == 503
    assert app.state.intake.store.count_items() == 0
