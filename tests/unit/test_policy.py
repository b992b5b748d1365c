"""The decisions of pqueue/policy.py, without a database: the one rule for a failed attempt,
whether the worker reported it or its lease ran out."""

from __future__ import annotations

import pytest

from pqueue.policy import lease_expired, lease_margin, worker_failed
from pqueue.states import NOW, FromNow, Status


def test_worker_failed__attempts_left__crashed_until_the_backoff() -> None:
    move = worker_failed(
        Status.CRASHED, attempts=2, max_attempts=3, error="Trace\nValueError: x", stop_reason=None, backoff=10
    )
    assert move.target == Status.CRASHED
    assert move.values["error"] == "Trace\nValueError: x" and move.values["finished_at"] is NOW
    assert move.values["lease_expires_at"] is None
    run_after = move.values["run_after"]
    assert isinstance(run_after, FromNow) and 20 <= run_after.seconds <= 25  # 10 * 2 ** (2 - 1), up to a quarter more
    assert move.message == "ValueError: x"  # the timeline shows the exception's line


def test_worker_failed__no_attempt_left__manual_intervention_without_backoff() -> None:
    move = worker_failed(Status.CRASHED, attempts=3, max_attempts=3, error="boom", stop_reason=None, backoff=10)
    assert move.target == Status.MANUAL_INTERVENTION and "run_after" not in move.values


@pytest.mark.parametrize("target", [Status.CANCELLED, Status.MANUAL_INTERVENTION])
def test_worker_failed__answering_a_stop_request__keeps_the_operators_reason(target: Status) -> None:
    move = worker_failed(target, attempts=1, max_attempts=3, error=None, stop_reason="wrong input", backoff=10)
    assert (move.target, move.values["error"], move.message) == (target, "wrong input", "wrong input")


def test_lease_expired__follows_the_same_rule_as_a_crash() -> None:
    for attempts, target in ((1, Status.CRASHED), (3, Status.MANUAL_INTERVENTION)):
        expired = lease_expired(
            attempts=attempts,
            max_attempts=3,
            lease_id=7,
            worker_id="w1",
            stop_request=None,
            stop_reason=None,
            backoff=10,
        )
        crashed = worker_failed(
            Status.CRASHED, attempts=attempts, max_attempts=3, error="x", stop_reason=None, backoff=10
        )
        assert expired.target == crashed.target == target
        assert ("run_after" in expired.values) == ("run_after" in crashed.values) == (target == Status.CRASHED)
        assert expired.values["error"] == f"lease expired on attempt {attempts} of 3"
        assert expired.message == "lease 7 of worker w1 expired"


def test_lease_expired__with_a_stop_request__goes_where_the_operator_asked() -> None:
    move = lease_expired(
        attempts=3, max_attempts=3, lease_id=2, worker_id="w", stop_request="cancelled", stop_reason="no", backoff=10
    )
    assert (move.target, move.values["operator_reason"], "error" in move.values) == (Status.CANCELLED, "no", False)


def test_lease_margin__a_quarter_of_the_lease_at_most_five_seconds() -> None:
    assert (lease_margin(8), lease_margin(60)) == (2, 5)
