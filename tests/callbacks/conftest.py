"""Fixtures for callback delivery: a partner on 127.0.0.1, and delivery loops that are stopped."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from consumer.delivery import DeliveryLoop
from pqueue import PersistentQ


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
