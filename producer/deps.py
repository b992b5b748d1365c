"""What every route needs, held once per app and handed out as FastAPI dependencies: the intake's
parts, and the caller once it holds the scope a route needs."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.openapi.models import HTTPBearer as HTTPBearerModel
from fastapi.security import SecurityScopes
from fastapi.security.base import SecurityBase

from pqueue import Caller, NewJob, PersistentQInterface, Settings, check_callback_url
from producer.backpressure import WaitingDepth
from producer.callers import Callers, Identity, require
from producer.group_commit import GroupCommitter
from producer.metrics import IntakeMetrics
from producer.rate_limits import SubmitRates
from producer.refusal_log import RefusalLog
from producer.schemas import JobIn


@dataclass
class Intake:
    """The app's store, settings, backpressure gauge, metrics, group committer and refusal log."""

    settings: Settings
    store: PersistentQInterface
    depth: WaitingDepth
    metrics: IntakeMetrics
    committer: GroupCommitter
    callers: Callers
    owns_store: bool
    rates: SubmitRates = field(default_factory=SubmitRates)
    refusals: RefusalLog = field(default_factory=lambda: RefusalLog(logging.getLogger("producer")))

    def close(self) -> None:
        """Finish pending submissions; close the store if this intake opened it."""
        self.committer.close()
        if self.owns_store:
            self.store.close()

    def new_job(self, job: JobIn, partner: str, where: str, idempotency_key: str | None = None) -> NewJob:
        """The library's NewJob of the caller's partner for a validated request; raises
        InvalidInput for a bad callback_url."""
        if job.callback_url is not None:
            check_callback_url(job.callback_url, self.settings.callback_allowed_hosts, f"{where}callback_url")
        return NewJob(
            payload=job.payload,
            queue=job.queue,
            priority=job.priority,
            callback_url=job.callback_url,
            idempotency_key=idempotency_key or job.idempotency_key,
            partner=partner,
        )


def intake_of(request: Request) -> Intake:
    """The Intake of the app serving this request."""
    intake: Intake = request.app.state.intake
    return intake


async def get_intake(request: Request) -> Intake:
    """intake_of as a dependency (async: FastAPI would run a plain def in its threadpool)."""
    return intake_of(request)


IntakeDep = Annotated[Intake, Depends(get_intake)]


def identity_of(request: Request) -> Identity:
    """Who calls, as KeyGuard found it (producer/guards.py)."""
    identity: Identity = request.state.identity
    return identity


class PartnerKey(SecurityBase):
    """The caller as a FastAPI security dependency: `Security(partner_key, scopes=["read"])` answers
    403 unless the caller holds the scope (admin holds all), and /openapi.json names the scope
    each operation needs (`security: [{"bearer": ["read"]}]`)."""

    def __init__(self) -> None:
        self.model = HTTPBearerModel(
            description=(
                "A partner's key (`pq_<id>_<secret>`, from `pq key create`) or PQ_API_TOKEN (partner "
                "`default`: submit, read, cancel). Each operation lists the scope it needs; `admin` "
                "holds every scope. With no key ever created and no PQ_API_TOKEN the intake is open."
            )
        )
        self.scheme_name = "bearer"

    async def __call__(self, request: Request, security_scopes: SecurityScopes) -> Caller:
        caller = identity_of(request).caller
        for scope in security_scopes.scopes:
            require(caller, scope)
        return caller


partner_key = PartnerKey()

Submitter = Annotated[Caller, Security(partner_key, scopes=["submit"])]
Reader = Annotated[Caller, Security(partner_key, scopes=["read"])]
Canceller = Annotated[Caller, Security(partner_key, scopes=["cancel"])]
Admin = Annotated[Caller, Security(partner_key, scopes=["admin"])]
