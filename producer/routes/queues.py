"""What runs next, and the go signal for the broker relay."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from producer.callers import ADMIN, may
from producer.deps import Admin, IntakeDep, Reader
from producer.routes import errors
from producer.routes.jobs import PartnerFilter, partner_filter
from producer.schemas import MAX_PAGE, JobSummary, NextJobs, QueueName, QueueOut

router = APIRouter(tags=["queues"])


@router.get("/next", responses=errors(422, 503))
def next_jobs(
    intake: IntakeDep,
    caller: Reader,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 10,
    queue: Annotated[QueueName | None, Query(description="one queue (default: every queue)")] = None,
    partner: PartnerFilter = None,
) -> NextJobs:
    """The caller's waiting jobs first in line, in the order they are predicted to start, each with
    its `wait` (as `GET /jobs/{id}` gives it); an admin key sees every partner's line."""
    line = intake.store.waits(queue=queue, limit=limit, partner=partner_filter(caller, partner))
    return NextJobs(jobs=[JobSummary.of(job, show_partner=may(caller, ADMIN), wait=wait) for job, wait in line])


@router.post("/relay/go", tags=["relay"], responses=errors(404, 409, 422, 503))
def relay_go(
    intake: IntakeDep,
    caller: Admin,
    queue: Annotated[
        QueueName | None, Query(description="the queue to go (default: the one queue a relay waits on)")
    ] = None,
) -> QueueOut:
    """Let the broker relay start feeding its queue to the remote agents: the queue named, else
    the one a registered relay waits on (`pq-relay --wait-for-go`). The answer names the queue
    resumed; an unknown queue is a 404 (a go never creates one), several waiting a 409. Needs an admin key."""
    return QueueOut.of(intake.store.relay_go(queue, actor="producer"))
