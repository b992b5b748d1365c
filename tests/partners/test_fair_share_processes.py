"""The fair share with real `pq-consumer` processes: who held the seat is read from a ledger the
algorithm writes (each run's start and end on the host's monotonic clock), never from pqueue's
own bookkeeping.

A submits long jobs (0.4 s), B jobs a quarter as long (0.1 s); both keep a backlog through the
window. With equal weights each holds the seat half the time (±10 points) over the first 40 runs;
with weights 3:1, 75/25. The same workload in arrival order (no partners) gives A 80 %: the check
cannot pass without the rule.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from pqueue import PersistentQ, Status
from tests.partners import ledger
from tests.partners.ledger import tag
from tests.programs import StartConsumer
from tests.support import wait_until

pytestmark = pytest.mark.timeout(240)

LONG, SHORT = 0.4, 0.1
WINDOW = 40  # runs
TOLERANCE = 0.10


def first_runs(path: Path, count: int, timeout: float = 120.0) -> list[ledger.Run]:
    """The first `count` runs of the ledger, once there are that many."""
    return wait_until(lambda: ledger.read(path)[:count] if len(ledger.read(path)) >= count else None, timeout)


def near(shares: dict[str, float], expected: dict[str, float]) -> bool:
    return all(abs(shares.get(who, 0.0) - part) <= TOLERANCE for who, part in expected.items())


@pytest.mark.parametrize(("weight_a", "expected_a"), [(1.0, 0.5), (3.0, 0.75)], ids=["equal", "3-to-1"])
def test_seat_time_is_shared_by_weight_whatever_the_job_lengths(
    q: PersistentQ, tmp_path: Path, start_consumer: StartConsumer, weight_a: float, expected_a: float
) -> None:
    path = tmp_path / "ledger.jsonl"
    q.add_partner("a", weight=weight_a)
    q.add_partner("b")
    ledger.submit(q, path, "a", LONG, 30, "a")  # all of A's first: arrival order alone would run them first
    ledger.submit(q, path, "b", SHORT, 90, "b")

    start_consumer()
    runs = first_runs(path, WINDOW)

    shares = ledger.shares(runs)
    assert near(shares, {"a": expected_a, "b": 1 - expected_a}), shares
    assert {run.who for run in runs[-5:]} <= {"a", "b"}
    waiting = {p.name: p.waiting for p in q.partners()}
    assert waiting["a"] > 0 and waiting["b"] > 0, "both stayed backlogged through the window"


def test_control__arrival_order_alone_fails_the_same_check(
    q: PersistentQ, tmp_path: Path, start_consumer: StartConsumer
) -> None:
    path = tmp_path / "ledger.jsonl"
    for _ in range(WINDOW // 2):  # one partner, the two kinds of job alternating
        ledger.submit(q, path, "a", LONG, 1, None)
        ledger.submit(q, path, "b", SHORT, 1, None)

    start_consumer()
    runs = first_runs(path, WINDOW)

    shares = ledger.shares(runs)
    assert shares["a"] == pytest.approx(LONG / (LONG + SHORT), abs=0.05), shares
    assert not near(shares, {"a": 0.5, "b": 0.5})


def test_a_consumer_killed_mid_run_loses_no_seat_time_and_charges_nothing_twice(
    q: PersistentQ, tmp_path: Path, start_consumer: StartConsumer
) -> None:
    path = tmp_path / "ledger.jsonl"
    q.add_partner("a")
    ledger.submit(q, path, "a", 1.5, 1, "a")
    first = start_consumer(PQ_LEASE_SECONDS="1")
    wait_until(lambda: q.count_items(status=Status.UNDER_PROCESS) == 1, what="the job to start")
    os.killpg(first.pid, signal.SIGKILL)  # the consumer, its helper and the run: no outcome recorded
    start_consumer(PQ_LEASE_SECONDS="1")  # rescues the job, then runs it again
    job_id = q.get_all_items().items[0].id
    wait_until(lambda: q.get_job(job_id).status == Status.PROCESSED, timeout=60, what="the job to run again")

    timeline = q.events(job_id)
    claims = [event.at for event in timeline if event.to_status == Status.UNDER_PROCESS]
    ends = [event.at for event in timeline if event.from_status == Status.UNDER_PROCESS]
    assert len(claims) == 2 and len(ends) == 2
    held = sum((end - start).total_seconds() for start, end in zip(claims, ends, strict=True))
    assert tag(q, "a") == pytest.approx(held, abs=0.5)  # each run charged once: up to its rescue, to its end
