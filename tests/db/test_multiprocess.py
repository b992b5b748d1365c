"""Many real processes on one database: nothing lost, nothing run twice, seats never exceeded."""

from __future__ import annotations

import os
import signal
import statistics
import time
from collections.abc import Callable
from typing import Any

import pytest

from pqueue import PersistentQ, Status
from tests.db import workers
from tests.db.workers import PROCESSES, drain, overrides_of
from tests.support import RACES

pytestmark = [RACES]


def max_overlap(runs: list[tuple[float, float]]) -> int:
    """The largest number of runs in progress at one moment."""
    edges = sorted([(start, 1) for start, _ in runs] + [(end, -1) for _, end in runs])
    peak = current = 0
    for _, step in edges:
        current += step
        peak = max(peak, current)
    return peak


@pytest.mark.process
@pytest.mark.timeout(600)
@pytest.mark.parametrize(
    ("seats", "one_transaction"),
    [(1, False), (4, False), (1, True)],
    ids=["1 seat", "4 seats", "1 seat, finish_and_claim"],
)
def test_four_producers_four_consumers__none_lost_none_twice_seats_kept(
    make_queue: Callable[..., PersistentQ], seats: int, one_transaction: bool
) -> None:
    # This test is about concurrency, not power loss: commits need not wait for the disk.
    store = make_queue(max_running=seats, synchronous_commit=False)
    overrides = overrides_of(store.settings, max_running=seats, synchronous_commit=False)
    total, per_producer = 2000, 500  # thousands of racing claims per consumer, in a minute
    out = PROCESSES.Queue()
    stop = PROCESSES.Event()
    consumers = [
        PROCESSES.Process(target=workers.consume, args=(overrides, stop, out, one_transaction)) for _ in range(4)
    ]
    producers = [
        PROCESSES.Process(target=workers.produce, args=(overrides, per_producer, f"p{i}", out)) for i in range(4)
    ]
    for process in consumers + producers:
        process.start()
    try:
        messages = drain(
            out,
            lambda m: any(x[0] == "error" for x in m) or sum(1 for x in m if x[0] == "run") >= total,
            timeout=540,
        )
    finally:
        stop.set()
        for process in consumers + producers:
            process.join(30)
            if process.is_alive():
                process.kill()
    errors = [m[1] for m in messages if m[0] == "error"]
    assert errors == [], errors[0] if errors else ""
    acked = {m[1] for m in messages if m[0] == "ack"}
    runs = [m for m in messages if m[0] == "run"]
    assert len(acked) == total
    assert sorted(r[1] for r in runs) == sorted(acked), "every acknowledged job ran exactly once"
    assert max_overlap([(r[3], r[4]) for r in runs]) <= seats
    assert store.count_items(status="processed") == total


@pytest.mark.process
@pytest.mark.timeout(120)
def test_idempotency_key__racing_processes_get_one_job(make_queue: Callable[..., PersistentQ]) -> None:
    store = make_queue()
    overrides = overrides_of(store.settings)
    out, barrier = PROCESSES.Queue(), PROCESSES.Barrier(6)
    processes = [PROCESSES.Process(target=workers.put_same_key, args=(overrides, barrier, out)) for _ in range(6)]
    for process in processes:
        process.start()
    messages = drain(out, lambda m: len(m) >= 6, timeout=90)
    for process in processes:
        process.join(10)
    assert [m for m in messages if m[0] == "error"] == []
    assert len({m[1] for m in messages}) == 1
    assert store.count_items() == 1


@pytest.mark.process
@pytest.mark.timeout(120)
def test_killed_worker__job_rescued_after_lease_and_finished_by_another(
    make_queue: Callable[..., PersistentQ],
) -> None:
    store = make_queue(lease_seconds=1, retry_backoff_seconds=0)
    job_id = store.put_item("important")
    out = PROCESSES.Queue()
    doomed = PROCESSES.Process(target=workers.hold_job, args=(overrides_of(store.settings, lease_seconds=1), out))
    doomed.start()
    assert drain(out, lambda m: len(m) >= 1, timeout=60)[0] == ("holding", job_id)
    os.kill(doomed.pid or 0, signal.SIGKILL)
    doomed.join(10)
    assert store.get_item("survivor") is None, "the lease is still held"
    deadline = time.monotonic() + 30
    while not store.rescue_expired():
        assert time.monotonic() < deadline, "the expired lease was never rescued"
        time.sleep(0.05)
    job = store.get_item("survivor")
    assert job is not None and job.id == job_id and job.attempts == 2
    store.update_status(job_id, "processed", lease_id=job.lease_id, result="ok")
    timeline = [(e.from_status, e.to_status, e.actor) for e in store.events(job_id)]
    assert timeline == [
        (None, Status.UNPROCESSED, "producer"),
        (Status.UNPROCESSED, Status.UNDER_PROCESS, "doomed"),
        (Status.UNDER_PROCESS, Status.CRASHED, "rescue"),
        (Status.CRASHED, Status.UNDER_PROCESS, "survivor"),
        (Status.UNDER_PROCESS, Status.PROCESSED, "survivor"),
    ]


@pytest.mark.process
@pytest.mark.timeout(300)
def test_wake_up__idle_consumer_starts_within_50ms_of_commit(make_queue: Callable[..., PersistentQ]) -> None:
    # The wake-up is measured, not the disk: commits need not wait for fsync here.
    store = make_queue(synchronous_commit=False)
    overrides = overrides_of(store.settings, synchronous_commit=False)
    rounds, tries = 3, 50
    out = PROCESSES.Queue()
    consumer = PROCESSES.Process(target=workers.idle_consumer, args=(overrides, rounds * tries, out))
    consumer.start()
    medians = []
    try:
        assert drain(out, lambda m: len(m) >= 1, timeout=60)[0][0] == "ready"
        # A busy machine can slow one round; a wake-up that falls back to polling (a second or
        # more) would fail every round.
        for _ in range(rounds):
            medians.append(statistics.median(_measure_wake_ups(store, out, tries)))
            if medians[-1] < 0.050:
                break
    finally:
        consumer.kill()  # it may still be waiting for the rounds that were not needed
        consumer.join(10)
    assert min(medians) < 0.050, medians


def _measure_wake_ups(store: PersistentQ, out: Any, tries: int) -> list[float]:
    """Seconds from each commit to the idle consumer's claim."""
    latencies = []
    for n in range(tries):
        time.sleep(0.02)  # let the consumer go idle in wait_for_work
        job_id = store.put_item(n)
        committed = time.time()
        [message] = drain(out, lambda m: len(m) >= 1, timeout=30)
        assert message[:2] == ("claimed", job_id), message
        latencies.append(message[2] - committed)
    return latencies
