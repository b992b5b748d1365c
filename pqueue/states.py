"""Job states (the words operators see), the moves allowed between them, and each move as a value."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Status(StrEnum):
    """Where a job is in its life."""

    UNPROCESSED = "unprocessed"
    UNDER_PROCESS = "under_process"
    PROCESSED = "processed"
    CRASHED = "crashed"
    MANUAL_INTERVENTION = "manual_intervention"
    CANCELLED = "cancelled"


class AgentStatus(StrEnum):
    """What the agents' side says of a job a relay sent them (pq-relay), kept beside its status,
    which stays under_process throughout: the document's words for the two halves of running."""

    QUEUED = "queued"  # on the broker (publish confirmed); no agent has taken it yet
    PROCESSING = "processing"  # an agent reported it is working on it


class DeliveryStatus(StrEnum):
    """Where a job's callback delivery is."""

    PENDING = "pending"
    DELIVERED = "delivered"
    UNDELIVERABLE = "undeliverable"


# Jobs a consumer may claim; a crashed job waits out its backoff (run_after) first.
CLAIMABLE: tuple[Status, ...] = (Status.UNPROCESSED, Status.CRASHED)

# States a job ends in; reaching one queues the job's callback.
FINAL: tuple[Status, ...] = (Status.PROCESSED, Status.MANUAL_INTERVENTION, Status.CANCELLED)

# Each operation and the states it may start from. Every transition in the store is one
# conditional UPDATE restricted to these states, so the check and the write are one step.
ALLOWED_FROM: dict[str, tuple[Status, ...]] = {
    "claim": CLAIMABLE,
    "complete": (Status.UNDER_PROCESS,),
    "release": (Status.UNDER_PROCESS,),
    "rescue": (Status.UNDER_PROCESS,),
    "requeue": (Status.CRASHED, Status.MANUAL_INTERVENTION, Status.CANCELLED),
    # A running job is not moved at once: the request is recorded and its consumer stops the
    # algorithm at its next heartbeat, so the seat is never free while the algorithm still runs.
    "cancel": (Status.UNPROCESSED, Status.CRASHED, Status.UNDER_PROCESS),
    "fail": (
        Status.UNPROCESSED,
        Status.UNDER_PROCESS,
        Status.CRASHED,
        Status.MANUAL_INTERVENTION,
        Status.CANCELLED,
    ),
}

# Outcomes a worker may record for the job it holds with update_status.
WORKER_OUTCOMES: tuple[Status, ...] = (
    Status.PROCESSED,
    Status.CRASHED,
    Status.MANUAL_INTERVENTION,
    Status.CANCELLED,
)


def describe(statuses: tuple[Status, ...]) -> str:
    """Join states for a message: 'crashed, manual_intervention or cancelled'."""
    names = [s.value for s in statuses]
    if len(names) == 1:
        return names[0]
    return ", ".join(names[:-1]) + " or " + names[-1]


def statuses(status: Status | str | Sequence[Status | str] | None) -> list[Status] | None:
    """The statuses a filter names (each one checked already: pqueue/validation.py), or None for
    no filter."""
    if status is None:
        return None
    return [Status(status)] if isinstance(status, str) else [Status(item) for item in status]


# -- moves as values --------------------------------------------------------------------------


class Now:
    """A column's new value: the database's clock (plus the test offset)."""


NOW = Now()


@dataclass(frozen=True)
class FromNow:
    """A column's new value: `seconds` after the database's clock."""

    seconds: float


@dataclass(frozen=True)
class Minus:
    """A column's new value: its value less `amount` (a claim's attempt given back)."""

    amount: int


@dataclass(frozen=True)
class Move:
    """One transition: the status a job goes to, the columns the move sets (plain values, NOW,
    FromNow or Minus), and its event row's message. The store applies it as one fenced UPDATE
    and the event row, in one transaction."""

    target: Status
    values: Mapping[str, Any]
    message: str | None


def ended(target: Status, error: str | None, message: str | None, *, run_after: FromNow | None = None) -> Move:
    """A running job's attempt is over (a worker's outcome other than processed, or its lease ran out)."""
    values: dict[str, Any] = {"finished_at": NOW, "lease_expires_at": None, "error": error}
    if run_after is not None:
        values["run_after"] = run_after
    return Move(target, values, message)


def released(reason: str) -> Move:
    """The claim given back unfinished: waiting again, with its attempt back."""
    values = {"attempts": Minus(1), "lease_expires_at": None, "started_at": None, "run_after": NOW}
    return Move(Status.UNPROCESSED, values, reason)


def requeued(message: str | None) -> Move:
    """Waiting again with fresh attempts, the last run's traces cleared (the event log keeps them)."""
    cleared = (
        "started_at",
        "finished_at",
        "lease_expires_at",
        "stop_request",
        "stop_reason",
        "result",
        "error",
        "operator_reason",
    )
    values: dict[str, Any] = {"attempts": 0, "timeouts": 0, "run_after": NOW, **dict.fromkeys(cleared)}
    return Move(Status.UNPROCESSED, values, message or "requeued with fresh attempts")


def stopped_by_operator(target: Status, reason: str, *, error: str | None = None) -> Move:
    """A job an operator failed (manual_intervention) or cancelled: the reason beside its last
    error, which stays (the traceback that explained the failure is what the next person reads).
    `error`: a run's own error to record first (a stopped run's), when it has one."""
    values: dict[str, Any] = {"operator_reason": reason, "finished_at": NOW, "lease_expires_at": None}
    if error is not None:
        values["error"] = error
    return Move(target, values, reason)


def stop_requested(running: Status, operation: str, target: Status, reason: str) -> Move:
    """A running job's worker is asked to stop it; the job stays where it is (its seat stays
    taken) until the worker has stopped the algorithm."""
    return Move(running, {"stop_request": target.value, "stop_reason": reason}, f"{operation} requested: {reason}")
