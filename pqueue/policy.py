"""The decisions: how long a crashed job waits, how close to a lease's end a worker stops, and
where a failed attempt goes. Pure functions, no database: the store applies what they return.

The one rule for a failed attempt, whether the worker reported it or its lease ran out: a job
with no attempt left goes to manual_intervention, any other to crashed, claimable again after
an exponential backoff with jitter.

A queue's policy (seats, max attempts, job timeout, lease, retry backoff) is stored with the
queue; a program's PQ_ settings are only the defaults it stores for a queue no one served before.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pqueue.backoff import jittered
from pqueue.models import JSON, Overruled, QueueInfo
from pqueue.settings import Settings
from pqueue.states import NOW, FromNow, Move, Status, ended, stopped_by_operator


def lease_margin(lease_seconds: float) -> float:
    """Safety margin around a lease: the worker stops this much before it ends, and rescue
    waits this much after, so a stalled worker and the next owner never overlap."""
    return min(5.0, lease_seconds / 4)


def payload_hash(payload: JSON) -> str:
    """A stable digest of a payload, to tell a repeated request from a conflicting one."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def attempt_failed(attempts: int, max_attempts: int, error: str | None, message: str | None, backoff: float) -> Move:
    """A failed attempt: manual_intervention once no attempt is left, else crashed until the backoff
    (from `backoff` seconds, doubling with each attempt) has passed."""
    if attempts >= max_attempts:
        return ended(Status.MANUAL_INTERVENTION, error, message)
    return ended(Status.CRASHED, error, message, run_after=FromNow(jittered(backoff, attempts)))


# The ends an operator may ask a running job for: `pq fail` and `pq cancel`.
OPERATOR_STOPS = (Status.MANUAL_INTERVENTION, Status.CANCELLED)


def worker_failed(
    target: Status,
    *,
    attempts: int,
    max_attempts: int,
    error: str | None,
    stop_reason: str | None,
    backoff: float,
    timed_out: bool = False,
    timeouts: int = 0,
    timeout_retries: int = 0,
    stop_request: str | None = None,
) -> Move:
    """The move for a worker's outcome other than processed: crashed follows attempt_failed,
    unless the run hit the job timeout once more than its queue's timeout retries allow (then
    manual_intervention: another run would most likely hold the seat for another whole timeout);
    cancelled or manual_intervention (a stop request answered, or an input the algorithm refused
    for good) are taken as they are. An operator's fail or cancel answered keeps the job's last
    error (the run's own, else the one before it, still in the row) with the reason beside it."""
    if stop_request in OPERATOR_STOPS and target == stop_request and stop_reason:
        return stopped_by_operator(target, stop_reason, error=error if error and error != stop_reason else None)
    error = error or stop_reason
    if target == Status.CRASHED and timed_out:
        return timed_out_move(attempts, max_attempts, error, backoff, timeouts, timeout_retries)
    if target == Status.CRASHED:
        return attempt_failed(attempts, max_attempts, error, timeline_line(error), backoff)
    return ended(target, error, timeline_line(error))


def timed_out_move(
    attempts: int, max_attempts: int, error: str | None, backoff: float, timeouts: int, timeout_retries: int
) -> Move:
    """A run killed at the job timeout: retried (as any failed attempt) while the queue's timeout
    retries are not spent, else manual_intervention at once. The job counts its timeouts."""
    counted = {"timeouts": timeouts + 1}
    line = timeline_line(error)
    if timeouts >= timeout_retries:
        spent = (
            "timed-out jobs are not retried"
            if timeout_retries == 0
            else f"its {timeout_retries} timeout retries are spent"
        )
        move = ended(Status.MANUAL_INTERVENTION, error, f"{line} ({spent})")
    else:
        move = attempt_failed(
            attempts, max_attempts, error, f"{line} (timeout retry {timeouts + 1} of {timeout_retries})", backoff
        )
    return Move(move.target, {**move.values, **counted}, move.message)


def lease_expired(
    *,
    attempts: int,
    max_attempts: int,
    lease_id: int,
    worker_id: str | None,
    stop_request: str | None,
    stop_reason: str | None,
    backoff: float,
) -> Move:
    """The move for a running job whose lease ran out: the status an operator asked for, or
    attempt_failed as if the worker had crashed."""
    message = f"lease {lease_id} of worker {worker_id} expired"
    if stop_request in OPERATOR_STOPS and stop_reason:
        return Move(Status(stop_request), stopped_by_operator(Status(stop_request), stop_reason).values, message)
    if stop_request:
        return ended(Status(stop_request), stop_reason, message)
    error = f"lease expired on attempt {attempts} of {max_attempts}"
    return attempt_failed(attempts, max_attempts, error, message, backoff)


def limit_lowered(attempts: int, limit: int, actor: str) -> Move:
    """A waiting job whose attempts already reach a lowered attempt limit: it runs no more."""
    message = f"max attempts lowered to {limit} by {actor}: {attempts} attempts already spent, not run again"
    return Move(Status.MANUAL_INTERVENTION, {"finished_at": NOW, "max_attempts": limit}, message)


def timeline_line(error: str | None) -> str | None:
    """The line of an error worth showing in a timeline: its last (the exception itself)."""
    if not error:
        return error
    lines = error.strip().splitlines()
    return lines[-1][:500] if lines else None


# Each queue policy value (pq_queues' column) and the PQ_ setting that is its default.
POLICY_DEFAULTS = {
    "seats": "max_running",
    "max_attempts": "max_attempts",
    "job_timeout": "job_timeout",
    "lease_seconds": "lease_seconds",
    "retry_backoff_seconds": "retry_backoff_seconds",
    "timeout_retries": "timeout_retries",
}


def policy_defaults(settings: Settings) -> dict[str, Any]:
    """The queue policy a program's PQ_ settings stand for, by pq_queues' column names."""
    return {name: getattr(settings, setting) for name, setting in POLICY_DEFAULTS.items()}


def overruled(settings: Settings, stored: QueueInfo) -> list[Overruled]:
    """The PQ_ settings this program was given that the queue's stored policy overrules, as data:
    the program that tells an operator says how to change the stored value."""
    found = []
    for name, setting in POLICY_DEFAULTS.items():
        given, held = getattr(settings, setting), getattr(stored, name)
        if setting in settings.model_fields_set and given != held:
            found.append(Overruled(queue=stored.name, name=name, setting=setting, given=given, stored=held))
    return found
