"""Health and metrics, for Supervisor, load balancers and Prometheus."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST

from producer.callers import ADMIN, may
from producer.deps import IntakeDep, Reader
from producer.routes import errors
from producer.schemas import ErrorOut, Health

router = APIRouter(tags=["operations"])


@router.get(
    "/healthz",
    responses={503: {"model": ErrorOut, "description": "the database does not answer, or takes no writes (a standby)"}},
    openapi_extra={"security": []},  # the one operation that needs no key
)
def healthz(intake: IntakeDep) -> Health:
    """200 while the database answers and takes writes (no token needed); 503 with the reason
    otherwise, a standby included."""
    intake.store.ping()
    return Health()


@router.get(
    "/metrics",
    response_class=Response,
    responses=errors(503, also={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text format"}}),
)
def metrics(intake: IntakeDep, caller: Reader) -> Response:
    """Jobs by status, waiting depth, oldest waiting age, running jobs, callbacks, and this intake's
    counters. A partner's key sees its own jobs, and other partners' only as one total per status."""
    partner = None if may(caller, ADMIN) else caller.partner
    return Response(intake.metrics.exposition(partner), media_type=CONTENT_TYPE_LATEST)
