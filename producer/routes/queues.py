"""What runs next, and the go signal for the broker relay."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from producer.deps import IntakeDep
from producer.routes import errors
from producer.schemas import MAX_PAGE, JobSummary, NextJobs, QueueName, QueueOut

router = APIRouter(tags=["queues"])


@router.get("/next", responses=errors(422, 503))
def next_jobs(
    intake: IntakeDep,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 10,
    queue: Annotated[QueueName | None, Query(description="one queue (default: every queue)")] = None,
) -> NextJobs:
    """The waiting jobs first in line, in the order consumers will take them (priority, then age)."""
    return NextJobs(jobs=[JobSummary.of(job) for job in intake.store.next_items(queue=queue, limit=limit)])


@router.post("/relay/go", tags=["relay"], responses=errors(404, 409, 422, 503))
def relay_go(
    intake: IntakeDep,
    queue: Annotated[
        QueueName | None, Query(description="the queue to go (default: the one queue a relay waits on)")
    ] = None,
) -> QueueOut:
    """Let the broker relay start feeding its queue to the remote agents: the queue named, else
    the one a registered relay waits on (`pq-relay --wait-for-go`). The answer names the queue
    resumed; an unknown queue is a 404 (a go never creates one), several waiting a 409."""
    return QueueOut.of(intake.store.relay_go(queue, actor="producer"))
