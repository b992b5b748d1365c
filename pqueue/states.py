"""Job states (the words operators see) and the moves allowed between them."""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    """Where a job is in its life."""

    UNPROCESSED = "unprocessed"
    UNDER_PROCESS = "under_process"
    PROCESSED = "processed"
    CRASHED = "crashed"
    MANUAL_INTERVENTION = "manual_intervention"
    CANCELLED = "cancelled"


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
