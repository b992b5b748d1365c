"""What every route needs, held once per app and handed out as a FastAPI dependency."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, Request

from pqueue import InvalidInput, NewJob, PersistentQ, Settings
from producer.backpressure import WaitingDepth
from producer.group_commit import GroupCommitter
from producer.metrics import IntakeMetrics
from producer.refusal_log import RefusalLog
from producer.schemas import JobIn


@dataclass
class Intake:
    """The app's store, settings, backpressure gauge, metrics, group committer and refusal log."""

    settings: Settings
    store: PersistentQ
    depth: WaitingDepth
    metrics: IntakeMetrics
    committer: GroupCommitter
    owns_store: bool
    refusals: RefusalLog = field(default_factory=lambda: RefusalLog(logging.getLogger("producer")))

    def close(self) -> None:
        """Finish pending submissions; close the store if this intake opened it."""
        self.committer.close()
        if self.owns_store:
            self.store.close()

    def new_job(self, job: JobIn, where: str, idempotency_key: str | None = None) -> NewJob:
        """The library's NewJob for a validated request; raises InvalidInput for a bad callback_url."""
        if job.callback_url is not None:
            check_callback_url(job.callback_url, self.settings.callback_allowed_hosts, f"{where}callback_url")
        return NewJob(
            payload=job.payload,
            queue=job.queue,
            priority=job.priority,
            callback_url=job.callback_url,
            idempotency_key=idempotency_key or job.idempotency_key,
        )


def check_callback_url(url: str, allowed_hosts: frozenset[str], field: str = "callback_url") -> None:
    """http(s) with a host, and one of PQ_CALLBACK_ALLOW's hosts when that is set."""
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError:
        raise InvalidInput(field, f"{url!r} has an invalid host or port") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise InvalidInput(field, f"{url!r} is not an http or https URL")
    if not host:
        raise InvalidInput(field, f"{url!r} names no host")
    if allowed_hosts and host not in allowed_hosts:
        raise InvalidInput(field, f"host {host!r} is not allowed; use one of {', '.join(sorted(allowed_hosts))}")


def intake_of(request: Request) -> Intake:
    """The Intake of the app serving this request."""
    intake: Intake = request.app.state.intake
    return intake


async def get_intake(request: Request) -> Intake:
    """intake_of as a dependency (async: FastAPI would run a plain def in its threadpool)."""
    return intake_of(request)


IntakeDep = Annotated[Intake, Depends(get_intake)]
