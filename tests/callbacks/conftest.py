"""Fixtures for callback delivery: a partner on 127.0.0.1, and delivery loops that are stopped."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from consumer.delivery import DeliveryLoop
from pqueue import Job, PersistentQ


@pytest.fixture
def make_loop() -> Iterator[Callable[..., DeliveryLoop]]:
    """DeliveryLoop(store, store.settings, worker_id); every loop is stopped afterwards."""
    loops: list[DeliveryLoop] = []

    def build(store: PersistentQ, worker_id: str = "w1", **options: Any) -> DeliveryLoop:
        loop = DeliveryLoop(store, store.settings, worker_id, **options)
        loops.append(loop)
        return loop

    yield build
    for loop in loops:
        loop.stop(5)


def finish(store: PersistentQ, callback_url: str, result: Any = None, payload: Any = None) -> Job:
    """Submit a job with a callback and record it processed, as a consumer would."""
    job_id = store.put_item(payload if payload is not None else {"n": 1}, callback_url=callback_url)
    claimed = store.get_item("worker-1")
    assert claimed is not None and claimed.id == job_id
    return store.update_status(job_id, "processed", lease_id=claimed.lease_id, result=result)
