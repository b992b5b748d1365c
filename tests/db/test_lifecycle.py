"""Every state transition, legal and illegal, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest

from pqueue import (
    InvalidInput,
    InvalidTransition,
    JobNotFound,
    LeaseLost,
    PersistentQ,
    Status,
    StopRequested,
)


def advance(store: PersistentQ, seconds: float) -> None:
    store.clock_offset += timedelta(seconds=seconds)


def snapshot(store: PersistentQ, job_id: int) -> tuple[object, ...]:
    job = store.get_job(job_id)
    return (job.status, job.attempts, job.lease_id, job.error, len(store.events(job_id)))


def test_put__stores_unprocessed_job_with_creation_event(q: PersistentQ) -> None:
    job_id = q.put_item({"x": 1}, priority=3, queue="algo")
    job = q.get_job(job_id)
    assert (job.status, job.priority, job.queue, job.attempts, job.payload) == (
        Status.UNPROCESSED,
        3,
        "algo",
        0,
        {"x": 1},
    )
    [event] = q.events(job_id)
    assert (event.from_status, event.to_status, event.actor) == (None, Status.UNPROCESSED, "producer")


def test_claim__moves_to_under_process_with_growing_lease(q: PersistentQ) -> None:
    job_id = q.put_item("a")
    job = q.get_item("w1")
    assert job is not None and job.id == job_id
    assert (job.status, job.attempts, job.lease_id, job.worker_id) == (Status.UNDER_PROCESS, 1, 1, "w1")
    assert job.lease_expires_at is not None and job.started_at is not None


def test_complete__records_result_and_event(q: PersistentQ) -> None:
    q.put_item("a")
    job = q.get_item("w1")
    assert job is not None
    done = q.update_status(job.id, Status.PROCESSED, lease_id=job.lease_id, result={"ok": True})
    assert (done.status, done.result, done.finished_at is not None) == (Status.PROCESSED, {"ok": True}, True)
    assert [e.to_status for e in q.events(job.id)] == [Status.UNPROCESSED, Status.UNDER_PROCESS, Status.PROCESSED]


def test_crash__retries_after_backoff_then_manual_intervention(make_queue: Callable[..., PersistentQ]) -> None:
    q = make_queue(max_attempts=2, retry_backoff_seconds=10)
    job_id = q.put_item("a")
    first = q.get_item("w1")
    assert first is not None
    crashed = q.update_status(job_id, "crashed", lease_id=first.lease_id, error="Traceback...\nValueError: bad")
    assert crashed.status == Status.CRASHED and crashed.error is not None
    assert q.get_item("w1") is None, "a crashed job waits out its backoff"
    advance(q, 13)  # base 10s, jitter at most +25%
    second = q.get_item("w1")
    assert second is not None and second.attempts == 2 and second.lease_id == 2
    final = q.update_status(job_id, "crashed", lease_id=second.lease_id, error="again")
    assert final.status == Status.MANUAL_INTERVENTION
    advance(q, 1000)
    assert q.get_item("w1") is None


def test_backoff__grows_exponentially(make_queue: Callable[..., PersistentQ]) -> None:
    q = make_queue(max_attempts=5, retry_backoff_seconds=100)
    job_id = q.put_item("a")
    delays = []
    for _ in range(3):
        job = q.get_item("w")
        assert job is not None
        crashed = q.update_status(job_id, "crashed", lease_id=job.lease_id, error="x")
        assert crashed.finished_at is not None
        delays.append((crashed.run_after - crashed.finished_at).total_seconds())
        q.clock_offset += crashed.run_after - crashed.finished_at + timedelta(seconds=1)
    assert 75 <= delays[0] <= 125 and 150 <= delays[1] <= 250 and 300 <= delays[2] <= 500


@pytest.mark.parametrize("operation", ["heartbeat", "update", "release"])
def test_fencing__stale_lease_is_refused(make_queue: Callable[..., PersistentQ], operation: str) -> None:
    q = make_queue(lease_seconds=10, retry_backoff_seconds=0)
    job_id = q.put_item("a")
    old = q.get_item("slow")
    assert old is not None
    advance(q, 20)
    assert q.rescue_expired() == [(job_id, Status.CRASHED)]
    new = q.get_item("fast")
    assert new is not None and new.lease_id > old.lease_id
    before = snapshot(q, job_id)
    with pytest.raises(LeaseLost, match=f"job {job_id}: lease {old.lease_id} is no longer held"):
        if operation == "heartbeat":
            q.heartbeat(job_id, old.lease_id)
        elif operation == "update":
            q.update_status(job_id, "processed", lease_id=old.lease_id, result=1)
        else:
            q.release(job_id, old.lease_id)
    assert snapshot(q, job_id) == before
    q.update_status(job_id, "processed", lease_id=new.lease_id, result=2)
    assert q.get_job(job_id).result == 2


def test_heartbeat__extends_lease(make_queue: Callable[..., PersistentQ]) -> None:
    q = make_queue(lease_seconds=10)
    q.put_item("a")
    job = q.get_item("w")
    assert job is not None and job.lease_expires_at is not None
    advance(q, 8)
    expires = q.heartbeat(job.id, job.lease_id)
    assert (expires - job.lease_expires_at).total_seconds() >= 7
    advance(q, 8)
    assert q.rescue_expired() == []


def test_release__gives_back_claim_without_spending_attempt(q: PersistentQ) -> None:
    job_id = q.put_item("a")
    job = q.get_item("w")
    assert job is not None
    released = q.release(job_id, job.lease_id)
    assert (released.status, released.attempts) == (Status.UNPROCESSED, 0)
    again = q.get_item("w")
    assert again is not None and again.attempts == 1 and again.lease_id == job.lease_id + 1


def test_rescue__expired_lease_becomes_crashed_or_manual(make_queue: Callable[..., PersistentQ]) -> None:
    q = make_queue(lease_seconds=10, max_attempts=1)
    job_id = q.put_item("a")
    assert q.get_item("w") is not None
    advance(q, 10)
    assert q.rescue_expired() == [], "rescue waits the lease plus a margin"
    advance(q, 5)
    assert q.rescue_expired() == [(job_id, Status.MANUAL_INTERVENTION)]
    last = q.events(job_id)[-1]
    assert last.actor == "rescue" and "expired" in (last.message or "")


def test_requeue__gives_fresh_attempts(make_queue: Callable[..., PersistentQ]) -> None:
    q = make_queue(max_attempts=1)
    job_id = q.put_item("a")
    job = q.get_item("w")
    assert job is not None
    q.update_status(job_id, "crashed", lease_id=job.lease_id, error="boom")
    assert q.get_job(job_id).status == Status.MANUAL_INTERVENTION
    requeued = q.requeue(job_id)
    assert (requeued.status, requeued.attempts, requeued.error) == (Status.UNPROCESSED, 0, None)
    again = q.get_item("w")
    assert again is not None and again.lease_id == 2
    assert q.events(job_id)[-2].actor == "admin"


@pytest.mark.parametrize("status", [Status.UNPROCESSED, Status.UNDER_PROCESS, Status.PROCESSED])
def test_requeue__refused_from_live_or_done_states(q: PersistentQ, status: Status) -> None:
    job_id = _job_in(q, status)
    before = snapshot(q, job_id)
    with pytest.raises(
        InvalidTransition, match=f"job {job_id} is {status}; requeue needs crashed, manual_intervention or cancelled"
    ):
        q.requeue(job_id)
    assert snapshot(q, job_id) == before


def test_cancel__waiting_job_is_cancelled_at_once(q: PersistentQ) -> None:
    job_id = q.put_item("a", callback_url="http://127.0.0.1:9/cb")
    cancelled = q.cancel(job_id, reason="not needed")
    assert (cancelled.status, cancelled.error, cancelled.operator_reason) == (Status.CANCELLED, None, "not needed")
    assert q.delivery(job_id) is not None, "a final state with a callback queues its delivery"
    assert q.get_item("w") is None


def test_cancel__running_job_asks_worker_and_keeps_seat(q: PersistentQ) -> None:
    job_id = q.put_item("a")
    q.put_item("b")
    job = q.get_item("w")
    assert job is not None
    requested = q.cancel(job_id)
    assert requested.status == Status.UNDER_PROCESS and requested.stop_request == Status.CANCELLED
    assert q.get_item("other") is None, "the seat stays taken until the algorithm has stopped"
    with pytest.raises(StopRequested) as stop:
        q.heartbeat(job_id, job.lease_id)
    assert stop.value.target == Status.CANCELLED
    done = q.update_status(job_id, stop.value.target, lease_id=job.lease_id, error=stop.value.reason)
    assert done.status == Status.CANCELLED
    assert q.get_item("other") is not None


def test_cancel__running_job_of_dead_worker_is_cancelled_by_rescue(make_queue: Callable[..., PersistentQ]) -> None:
    q = make_queue(lease_seconds=10)
    job_id = q.put_item("a")
    assert q.get_item("w") is not None
    q.cancel(job_id)
    advance(q, 20)
    assert q.rescue_expired() == [(job_id, Status.CANCELLED)]


def test_fail__moves_to_manual_intervention_with_reason(q: PersistentQ) -> None:
    job_id = q.put_item("a")
    failed = q.fail(job_id, "partner asked to stop")
    assert (failed.status, failed.operator_reason) == (Status.MANUAL_INTERVENTION, "partner asked to stop")
    assert failed.error is None, "it never ran: no error of its own"
    assert q.events(job_id)[-1].message == "partner asked to stop"


def test_fail__refused_for_processed_and_needs_reason(q: PersistentQ) -> None:
    job_id = _job_in(q, Status.PROCESSED)
    with pytest.raises(InvalidTransition, match="is processed; fail needs"):
        q.fail(job_id, "why")
    with pytest.raises(InvalidInput, match="reason"):
        q.fail(job_id, "  ")


def test_cancel__refused_for_final_states(q: PersistentQ) -> None:
    for status in (Status.PROCESSED, Status.CANCELLED, Status.MANUAL_INTERVENTION):
        job_id = _job_in(q, status)
        before = snapshot(q, job_id)
        with pytest.raises(InvalidTransition, match=f"is {status}; cancel needs"):
            q.cancel(job_id)
        assert snapshot(q, job_id) == before


def test_expect__refuses_action_when_job_moved_since_shown(q: PersistentQ) -> None:
    job_id = _job_in(q, Status.CANCELLED)
    with pytest.raises(InvalidTransition, match="as it was shown"):
        q.requeue(job_id, expect=Status.MANUAL_INTERVENTION)
    assert q.requeue(job_id, expect=Status.CANCELLED).status == Status.UNPROCESSED


def test_unknown_job__is_a_clear_error(q: PersistentQ) -> None:
    for call in (q.get_job, q.requeue, q.cancel, q.events, lambda i: q.fail(i, "x")):
        with pytest.raises(JobNotFound, match="job 999 not found"):
            call(999)


def test_update_status__rejects_non_outcomes_and_bad_results(q: PersistentQ) -> None:
    q.put_item("a")
    job = q.get_item("w")
    assert job is not None
    before = snapshot(q, job.id)
    with pytest.raises(InvalidInput, match="not an outcome"):
        q.update_status(job.id, "unprocessed", lease_id=job.lease_id)
    with pytest.raises(InvalidInput, match="JSON"):
        q.update_status(job.id, "processed", lease_id=job.lease_id, result={1, 2})
    assert snapshot(q, job.id) == before


def test_finish_and_claim__records_the_outcome_and_passes_the_single_seat_on(
    make_queue: Callable[..., PersistentQ],
) -> None:
    q = make_queue(max_running=1)
    first_id, second_id = q.put_item("a"), q.put_item("b")
    first = q.get_item("w")
    assert first is not None and first.id == first_id
    assert q.get_item("other") is None  # the only seat is taken

    done, following = q.finish_and_claim(first.id, "processed", lease_id=first.lease_id, worker_id="w", result=7)

    assert (done.id, done.status, done.result) == (first_id, Status.PROCESSED, 7)
    assert following is not None and following.id == second_id
    assert (following.status, following.worker_id, following.attempts) == (Status.UNDER_PROCESS, "w", 1)
    assert [e.to_status for e in q.events(first_id)] == [Status.UNPROCESSED, Status.UNDER_PROCESS, Status.PROCESSED]
    assert [e.to_status for e in q.events(second_id)] == [Status.UNPROCESSED, Status.UNDER_PROCESS]
    last, none = q.finish_and_claim(second_id, "crashed", lease_id=following.lease_id, worker_id="w", error="boom")
    assert (last.status, last.error, none) == (Status.CRASHED, "boom", None)  # backoff: not claimable yet


def test_finish_and_claim__claims_nothing_from_a_paused_queue(q: PersistentQ) -> None:
    q.put_item("a")
    q.put_item("b")
    job = q.get_item("w")
    assert job is not None
    q.pause()
    done, following = q.finish_and_claim(job.id, "processed", lease_id=job.lease_id, worker_id="w")
    assert (done.status, following) == (Status.PROCESSED, None)


def test_finish_and_claim__with_a_stale_lease_or_bad_result_changes_nothing(q: PersistentQ) -> None:
    waiting_id = q.put_item("waits")
    q.put_item("runs", priority=-1)
    job = q.get_item("w")
    assert job is not None
    before = (snapshot(q, job.id), snapshot(q, waiting_id))
    with pytest.raises(LeaseLost):
        q.finish_and_claim(job.id, "processed", lease_id=job.lease_id + 1, worker_id="w")
    with pytest.raises(InvalidInput, match="JSON"):
        q.finish_and_claim(job.id, "processed", lease_id=job.lease_id, worker_id="w", result={1, 2})
    with pytest.raises(InvalidInput, match="not an outcome"):
        q.finish_and_claim(job.id, "cancelled!", lease_id=job.lease_id, worker_id="w")
    assert (snapshot(q, job.id), snapshot(q, waiting_id)) == before


def _job_in(q: PersistentQ, status: Status) -> int:
    """A fresh job brought to the given status through legal moves (in its own queue)."""
    queue = f"q-{status}"
    job_id = q.put_item(status.value, queue=queue)
    if status == Status.UNPROCESSED:
        return job_id
    if status == Status.CANCELLED:
        q.cancel(job_id)
        return job_id
    if status == Status.MANUAL_INTERVENTION:
        q.fail(job_id, "broken")
        return job_id
    job = q.get_item("w", queue=queue)
    assert job is not None and job.id == job_id
    if status == Status.PROCESSED:
        q.update_status(job_id, "processed", lease_id=job.lease_id, result=None)
    elif status == Status.CRASHED:
        q.update_status(job_id, "crashed", lease_id=job.lease_id, error="x")
    return job_id
