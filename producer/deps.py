"""What every route needs, held once per app and handed out as a FastAPI dependency."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request

from pqueue import NewJob, PersistentQInterface, Settings, check_callback_url
from producer.backpressure import WaitingDepth
from producer.group_commit import GroupCommitter
from producer.metrics import IntakeMetrics
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


def intake_of(request: Request) -> Intake:
    """The Intake of the app serving this request."""
    intake: Intake = request.app.state.intake
    return intake


async def get_intake(request: Request) -> Intake:
    """intake_of as a dependency (async: FastAPI would run a plain def in its threadpool)."""
    return intake_of(request)


IntakeDep = Annotated[Intake, Depends(get_intake)]
