"""Attempt limits an operator changes, and jobs that hit the job timeout: no run past a limit."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta

import pytest

from pqueue import InvalidInput, PersistentQ, Status


def crash_round(q: PersistentQ) -> list[int]:
    """Claim every due job once and record a crashed attempt for each; then let the backoffs pass."""
    crashed = []
    while (job := q.get_item("w")) is not None:
        q.update_status(job.id, "crashed", lease_id=job.lease_id, error="Traceback...\nFileNotFoundError: nope-x.txt")
        crashed.append(job.id)
    q.clock_offset += timedelta(seconds=3600)
    return crashed


def test_lowered_max_attempts__a_waiting_job_that_reached_it_ends_at_once_and_is_never_claimed(
    make_queue: Callable[..., PersistentQ],
) -> None:
    q = make_queue(max_attempts=3, retry_backoff_seconds=5)
    q.set_queue_policy("default", seats=5)
    job_id = q.put_item({"file": "nope-x.txt"}, callback_url="http://127.0.0.1:9/cb")
    own = q.put_item({"file": "own.txt"}, max_attempts=5)
    assert crash_round(q) == [job_id, own] and crash_round(q) == [job_id, own]
    fresh = q.put_item({"file": "fresh.txt"})
    own_before = q.get_job(own)

    info = q.set_queue_policy("default", max_attempts=2)

    assert info.max_attempts == 2 and info.ended == (job_id,)
    ended = q.get_job(job_id)
    assert (ended.status, ended.attempts, ended.max_attempts) == (Status.MANUAL_INTERVENTION, 2, 2)
    assert ended.error is not None and "FileNotFoundError" in ended.error, "the last error is kept"
    last = q.events(job_id)[-1]
    assert (last.from_status, last.to_status, last.actor) == (Status.CRASHED, Status.MANUAL_INTERVENTION, "admin")
    assert last.message == "max attempts lowered to 2 by admin: 2 attempts already spent, not run again"
    assert q.delivery(job_id) is not None, "a final state queues its callback, as any other"
    assert q.get_job(own) == own_before, "a job with its own limit keeps it"
    claimed_ids = []
    while (claimed := q.get_item("w")) is not None:
        claimed_ids.append(claimed.id)
        assert claimed.attempts <= claimed.max_attempts, f"attempt {claimed.attempts} of {claimed.max_attempts}"
        q.update_status(claimed.id, "processed", lease_id=claimed.lease_id)
    assert sorted(claimed_ids) == [own, fresh]
    assert not any((event.message or "").startswith("attempt 3") for event in q.events(job_id))


@pytest.mark.parametrize("path", ["worker", "rescue"])
def test_lowered_max_attempts__a_running_job_that_fails_is_judged_by_the_limit_as_it_is_now(
    make_queue: Callable[..., PersistentQ], path: str
) -> None:
    q = make_queue(max_attempts=3, retry_backoff_seconds=5, lease_seconds=1)
    q.adopt_queue()
    job_id = q.put_item("fails")
    assert crash_round(q) == [job_id]
    job = q.get_item("w")
    assert job is not None and (job.attempts, job.max_attempts) == (2, 3)
    assert q.set_queue_policy("default", max_attempts=2).ended == (), "a running job is not moved"
    if path == "worker":
        done = q.update_status(job_id, "crashed", lease_id=job.lease_id, error="boom")
        assert done.status == Status.MANUAL_INTERVENTION
    else:
        q.clock_offset += timedelta(seconds=60)
        assert q.rescue_expired() == [(job_id, Status.MANUAL_INTERVENTION)]
    assert q.get_item("w") is None


def test_raised_max_attempts__a_failed_attempt_is_retried_under_the_new_limit(
    make_queue: Callable[..., PersistentQ],
) -> None:
    q = make_queue(max_attempts=1, retry_backoff_seconds=0)
    q.adopt_queue()
    job_id = q.put_item("fails")
    job = q.get_item("w")
    assert job is not None and job.max_attempts == 1
    assert q.set_queue_policy("default", max_attempts=3).ended == ()
    assert q.update_status(job_id, "crashed", lease_id=job.lease_id, error="boom").status == Status.CRASHED


@pytest.mark.parametrize("chained", [False, True])
def test_timed_out_attempt__goes_to_manual_intervention_without_another_run_and_tells_the_partner_plainly(
    make_queue: Callable[..., PersistentQ], chained: bool
) -> None:
    q = make_queue(max_attempts=3, retry_backoff_seconds=0)
    job_id = q.put_item({"runaway": True}, callback_url="http://127.0.0.1:9/cb")
    job = q.get_item("w")
    assert job is not None
    error = "JobTimeout: the job ran longer than its time limit of 5s and was stopped"
    if chained:
        done, _next = q.finish_and_claim(
            job_id, "crashed", lease_id=job.lease_id, worker_id="w", error=error, timed_out=True
        )
    else:
        done = q.update_status(job_id, "crashed", lease_id=job.lease_id, error=error, timed_out=True)
    assert (done.status, done.attempts, done.error) == (Status.MANUAL_INTERVENTION, 1, error)
    assert q.events(job_id)[-1].message == f"{error} (timed-out jobs are not retried)"
    delivery = q.delivery(job_id)
    assert delivery is not None
    body = json.loads(delivery.body)
    assert (body["status"], body["error"]) == ("manual_intervention", error), "partner-facing words, no pq command"
    assert q.get_item("w") is None


def test_crashed_attempt_that_did_not_time_out__is_still_retried(make_queue: Callable[..., PersistentQ]) -> None:
    q = make_queue(max_attempts=3, retry_backoff_seconds=0)
    job_id = q.put_item("fails")
    job = q.get_item("w")
    assert job is not None
    assert q.update_status(job_id, "crashed", lease_id=job.lease_id, error="boom").status == Status.CRASHED


def test_timeout_retries__a_queue_may_run_a_timed_out_job_again_that_many_times(
    make_queue: Callable[..., PersistentQ],
) -> None:
    q = make_queue(max_attempts=5, retry_backoff_seconds=0)
    assert q.set_queue_policy("default", timeout_retries=1).timeout_retries == 1
    job_id = q.put_item({"runaway": True})
    error = "JobTimeout: the job ran longer than its time limit of 5s and was stopped"

    first = q.get_item("w")
    assert first is not None
    retried = q.update_status(job_id, "crashed", lease_id=first.lease_id, error=error, timed_out=True)
    assert retried.status == Status.CRASHED
    assert q.events(job_id)[-1].message == f"{error} (timeout retry 1 of 1)"
    second = q.get_item("w")
    assert second is not None and second.id == job_id
    ended = q.update_status(job_id, "crashed", lease_id=second.lease_id, error=error, timed_out=True)
    assert (ended.status, ended.attempts) == (Status.MANUAL_INTERVENTION, 2), "attempts were left: timeouts decide"
    assert q.events(job_id)[-1].message == f"{error} (its 1 timeout retries are spent)"

    q.requeue(job_id)  # fresh attempts, and fresh timeout retries
    third = q.get_item("w")
    assert third is not None
    assert q.update_status(job_id, "crashed", lease_id=third.lease_id, error=error, timed_out=True).status == (
        Status.CRASHED
    )


def test_timeout_retries__stored_for_every_host_and_a_bad_value_is_refused(
    make_queue: Callable[..., PersistentQ],
) -> None:
    first = make_queue(timeout_retries=2)
    assert first.adopt_queue().timeout_retries == 2, "the first consumer stores its PQ_TIMEOUT_RETRIES"
    other_host = make_queue(timeout_retries=0)
    assert other_host.adopt_queue().timeout_retries == 2
    with pytest.raises(InvalidInput, match="timeout_retries: must be at least 0"):
        other_host.set_queue_policy("default", timeout_retries=-1)
    assert other_host.queue_settings("default").timeout_retries == 2  # type: ignore[union-attr]
