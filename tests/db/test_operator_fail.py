"""`fail`: an operator's reason is stored beside the job's last error, never over it, and jobs an
operator failed are counted apart from those still waiting for a person."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta

import pytest

from pqueue import PersistentQ, Status, StopRequested
from pqueue.schema import deliveries
from tests.db.crashed import TRACEBACK, crashed, run_again


def test_fail__keeps_the_last_error_and_stores_the_reason_beside_it(q: PersistentQ) -> None:
    job_id = crashed(q, max_attempts=1)
    assert q.get_job(job_id).status == Status.MANUAL_INTERVENTION

    failed = q.fail(job_id, "partner sent a bad field")

    assert failed.status == Status.MANUAL_INTERVENTION
    assert (failed.error, failed.operator_reason) == (TRACEBACK, "partner sent a bad field")
    assert q.get_job(job_id) == failed
    last = q.events(job_id)[-1]
    assert (last.actor, last.message) == ("admin", "partner sent a bad field")


def test_fail__a_waiting_job_that_never_ran_has_a_reason_and_no_error(q: PersistentQ) -> None:
    job_id = q.put_item({"n": 1})
    failed = q.fail(job_id, "partner withdrew it")
    assert (failed.status, failed.error, failed.operator_reason) == (
        Status.MANUAL_INTERVENTION,
        None,
        "partner withdrew it",
    )


def test_fail__a_running_job_stopped_by_its_worker_keeps_the_error_of_the_run_before(q: PersistentQ) -> None:
    job_id = crashed(q, max_attempts=3)
    run = run_again(q, job_id)

    asked = q.fail(job_id, "partner sent a bad field")
    assert (asked.status, asked.stop_request) == (Status.UNDER_PROCESS, Status.MANUAL_INTERVENTION)
    with pytest.raises(StopRequested):
        q.heartbeat(job_id, run.lease_id)
    # The consumer answers a stop request with the reason as its error, as consumer/running.py does.
    stopped = q.update_status(job_id, "manual_intervention", lease_id=run.lease_id, error="partner sent a bad field")

    assert stopped.status == Status.MANUAL_INTERVENTION
    assert (stopped.error, stopped.operator_reason) == (TRACEBACK, "partner sent a bad field")


def test_fail__a_running_job_whose_worker_died_keeps_its_error_when_rescued(
    make_queue: Callable[..., PersistentQ],
) -> None:
    q = make_queue(lease_seconds=10)
    job_id = crashed(q, max_attempts=3)
    run_again(q, job_id)
    q.fail(job_id, "partner sent a bad field")
    q.clock_offset += timedelta(seconds=30)  # the lease and its margin are over

    assert q.rescue_expired() == [(job_id, Status.MANUAL_INTERVENTION)]
    job = q.get_job(job_id)
    assert (job.error, job.operator_reason) == (TRACEBACK, "partner sent a bad field")


def test_requeue__clears_the_reason_with_the_error(q: PersistentQ) -> None:
    job_id = crashed(q, max_attempts=1)
    q.fail(job_id, "partner sent a bad field")
    again = q.requeue(job_id)
    assert (again.status, again.error, again.operator_reason) == (Status.UNPROCESSED, None, None)


def test_stats__operator_failed_apart_from_those_waiting_for_a_person(q: PersistentQ) -> None:
    crashed(q, max_attempts=1)  # out of attempts: waits for a person
    decided = crashed(q, max_attempts=1)
    q.fail(decided, "partner sent a bad field")
    q.fail(q.put_item({"n": 2}, queue="reports"), "duplicate")
    q.cancel(q.put_item({"n": 3}), reason="not wanted")

    stats = q.stats()

    assert stats.total(Status.MANUAL_INTERVENTION) == 3
    assert stats.operator_failed == {"default": 1, "reports": 1}
    assert (stats.waiting_for_person(), stats.failed_by_operator()) == (1, 2)
    assert q.stats(partner="default").operator_failed == {"default": 1, "reports": 1}


def test_callback__carries_the_partners_line_of_the_error_and_the_reason(q: PersistentQ) -> None:
    job_id = crashed(q, max_attempts=1, callback_url="http://127.0.0.1:9/cb")
    q.fail(job_id, "partner sent a bad field")
    with q.engine.connect() as conn:
        bodies = [json.loads(row.body) for row in conn.execute(deliveries.select().order_by(deliveries.c.id))]
    assert [(b["status"], b["error"], b.get("operator_reason")) for b in bodies] == [
        ("manual_intervention", "KeyError: 'vendor'", None),  # out of attempts
        ("manual_intervention", "KeyError: 'vendor'", "partner sent a bad field"),  # then failed on purpose
    ]
