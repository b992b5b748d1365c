"""Callback delivery inside the real `pq-consumer`: a slow partner never holds the licence seat,
and deliveries pending when the consumer is SIGKILLed are all delivered after a restart."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from pqueue import DeliveryStatus, PersistentQ, Status
from tests.callbacks.partner import Partner, Reply
from tests.programs import Process, Programs
from tests.support import wait_until

pytestmark = [pytest.mark.process, pytest.mark.timeout(240)]

ALGORITHM = "tests.callbacks.algorithms:echo"
Launch = Callable[..., Process]


@pytest.fixture
def launch(db_env: dict[str, str], programs: Programs) -> Launch:
    """Start pq-consumer on the test database, logging to consumer.log."""

    def run(**env: str) -> Process:
        full = {**db_env, "PQ_ALGORITHM": ALGORITHM, "PQ_LEASE_SECONDS": "10", **env}
        return programs.start("pq-consumer", env=full, log="consumer.log")

    return run


def delivery_status(q: PersistentQ, job_id: int) -> DeliveryStatus | None:
    delivery = q.delivery(job_id)
    return delivery.status if delivery is not None else None


def all_processed(q: PersistentQ, job_ids: list[int]) -> bool:
    return all(q.get_job(job_id).status == Status.PROCESSED for job_id in job_ids)


@pytest.mark.parametrize("backend", ["sqlite"])
def test_consumer__partner_holding_a_callback__algorithm_keeps_running_the_backlog(
    make_queue: Callable[..., PersistentQ], launch: Launch, partner: Partner, tmp_path: Path
) -> None:
    q = make_queue()
    partner.default = Reply(200, hold=True)
    first = q.put_item({"n": 0}, callback_url=partner.url())
    launch(PQ_CALLBACK_TIMEOUT="60")
    wait_until(lambda: partner.open_now >= 1, timeout=90, what="the first callback held open by the partner")

    backlog = [q.put_item({"n": n}, callback_url=partner.url()) for n in range(1, 5)]
    wait_until(lambda: all_processed(q, backlog), timeout=90, what="the backlog processed")

    assert partner.requests()[0].answered is None, "the first callback is still unanswered"
    assert delivery_status(q, first) == DeliveryStatus.PENDING
    partner.release()
    jobs = [first, *backlog]
    wait_until(
        lambda: all(delivery_status(q, j) == DeliveryStatus.DELIVERED for j in jobs),
        timeout=90,
        what="every callback delivered once the partner answers",
    )


def test_consumer__sigkilled_with_deliveries_pending__all_delivered_after_restart(
    make_queue: Callable[..., PersistentQ], launch: Launch, partner: Partner
) -> None:
    q = make_queue()
    partner.default = Reply(503)
    job_ids = [q.put_item({"n": n}, callback_url=partner.url()) for n in range(5)]
    settings = {"PQ_CALLBACK_BACKOFF_SECONDS": "0.2", "PQ_CALLBACK_MAX_ATTEMPTS": "1000", "PQ_CALLBACK_TIMEOUT": "1"}
    consumer = launch(**settings)

    def failed_once_each() -> bool:
        deliveries = [q.delivery(job_id) for job_id in job_ids]
        return all(d is not None and d.attempts >= 1 for d in deliveries)

    wait_until(failed_once_each, timeout=90, what="every callback attempted and refused")
    os.killpg(consumer.pid, signal.SIGKILL)
    consumer.wait(10)
    partner.default = Reply(200)
    assert all(delivery_status(q, job_id) == DeliveryStatus.PENDING for job_id in job_ids)

    launch(**settings)
    wait_until(
        lambda: all(delivery_status(q, j) == DeliveryStatus.DELIVERED for j in job_ids),
        timeout=90,
        what="every pending callback delivered by the restarted consumer",
    )
    for job_id in job_ids:
        job = q.get_job(job_id)
        assert job.status == Status.PROCESSED and job.attempts == 1, "delivery never re-runs the algorithm"
