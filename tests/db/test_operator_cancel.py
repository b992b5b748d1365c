"""`cancel`: an operator's reason is stored beside the job's last error, never over it (a cancelled
crashed job keeps the traceback that explained it), as `fail` does."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta

import pytest

from pqueue import PersistentQ, Status, StopRequested
from pqueue.schema import deliveries
from tests.db.crashed import TRACEBACK, crashed, run_again


def test_cancel__a_crashed_job_keeps_its_traceback_with_the_reason_beside_it(q: PersistentQ) -> None:
    job_id = crashed(q, max_attempts=3)
    assert q.get_job(job_id).status == Status.CRASHED

    cancelled = q.cancel(job_id, reason="partner withdrew it")

    assert cancelled.status == Status.CANCELLED
    assert (cancelled.error, cancelled.operator_reason) == (TRACEBACK, "partner withdrew it")
    assert cancelled.operator_verdict == "cancelled by an operator"
    assert q.get_job(job_id) == cancelled
    last = q.events(job_id)[-1]
    assert (last.to_status, last.actor, last.message) == ("cancelled", "admin", "partner withdrew it")


def test_cancel__a_waiting_job_without_a_reason_has_the_default_one_and_no_error(q: PersistentQ) -> None:
    job_id = q.put_item({"n": 1})
    cancelled = q.cancel(job_id, actor="ops")
    assert (cancelled.status, cancelled.error, cancelled.operator_reason) == (
        Status.CANCELLED,
        None,
        "cancelled by ops",
    )


def test_cancel__a_running_job_stopped_by_its_worker_keeps_the_error_of_the_run_before(q: PersistentQ) -> None:
    job_id = crashed(q, max_attempts=3)
    run = run_again(q, job_id)

    asked = q.cancel(job_id, reason="partner withdrew it")
    assert (asked.status, asked.stop_request) == (Status.UNDER_PROCESS, Status.CANCELLED)
    with pytest.raises(StopRequested):
        q.heartbeat(job_id, run.lease_id)
    # The consumer answers a stop request with the reason as its error, as consumer/running.py does.
    stopped = q.update_status(job_id, "cancelled", lease_id=run.lease_id, error="partner withdrew it")

    assert stopped.status == Status.CANCELLED
    assert (stopped.error, stopped.operator_reason) == (TRACEBACK, "partner withdrew it")


def test_cancel__a_running_job_whose_worker_died_keeps_its_error_when_rescued(
    make_queue: Callable[..., PersistentQ],
) -> None:
    q = make_queue(lease_seconds=10)
    job_id = crashed(q, max_attempts=3)
    run_again(q, job_id)
    q.cancel(job_id, reason="partner withdrew it")
    q.clock_offset += timedelta(seconds=30)  # the lease and its margin are over

    assert q.rescue_expired() == [(job_id, Status.CANCELLED)]
    job = q.get_job(job_id)
    assert (job.status, job.error, job.operator_reason) == (Status.CANCELLED, TRACEBACK, "partner withdrew it")


def test_requeue__a_cancelled_job_clears_the_reason_with_the_error(q: PersistentQ) -> None:
    job_id = crashed(q, max_attempts=3)
    q.cancel(job_id, reason="partner withdrew it")
    again = q.requeue(job_id)
    assert (again.status, again.error, again.operator_reason, again.operator_verdict) == (
        Status.UNPROCESSED,
        None,
        None,
        None,
    )


def test_stats__a_cancelled_job_is_not_counted_as_failed_by_an_operator(q: PersistentQ) -> None:
    q.cancel(crashed(q, max_attempts=3), reason="partner withdrew it")
    q.fail(q.put_item({"n": 2}), "duplicate")

    stats = q.stats()

    assert (stats.total(Status.CANCELLED), stats.total(Status.MANUAL_INTERVENTION)) == (1, 1)
    assert stats.operator_failed == {"default": 1}
    assert (stats.waiting_for_person(), stats.failed_by_operator()) == (0, 1)


def test_callback__a_cancelled_crashed_job_carries_its_error_line_and_the_reason(q: PersistentQ) -> None:
    job_id = crashed(q, max_attempts=3, callback_url="http://127.0.0.1:9/cb")
    q.cancel(job_id, reason="partner withdrew it")
    with q.engine.connect() as conn:
        bodies = [json.loads(row.body) for row in conn.execute(deliveries.select().order_by(deliveries.c.id))]
    assert [(b["status"], b["error"], b.get("operator_reason")) for b in bodies] == [
        ("cancelled", "KeyError: 'vendor'", "partner withdrew it"),
    ]
