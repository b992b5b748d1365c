"""create_app(settings): the intake's FastAPI app, wired to one store."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from pqueue import PersistentQ, Settings, open_with_retry
from producer import errors
from producer.backpressure import WaitingDepth
from producer.calibration import PredictionRecorder
from producer.callers import Callers
from producer.deps import Intake
from producer.group_commit import GroupCommitter
from producer.guards import BodyGuard, KeyGuard
from producer.metrics import IntakeMetrics
from producer.routes import jobs, ops, queues, seeds
from producer.submit_path import SubmitShortcut

DESCRIPTION = """\
Submit requests for the licensed algorithm and follow them until their outcome.

A `202` means the job is committed to the database. Repeat a request with the same
`idempotency_key` (or `Idempotency-Key` header) safely: you get the first job back with `200`.
Every error answers `{"detail": "...", "errors": [...]}`; a `503` carries `Retry-After`.

Send your key as `Authorization: Bearer <key>`. Each operation names the scope it needs (submit,
read, cancel; admin holds all of them). A partner sees and cancels only its own jobs: another
partner's job answers `404` exactly as an unknown id. Over its rate a partner gets `429` with
`Retry-After` and the `RateLimit` headers.
"""


def create_app(settings: Settings, store: PersistentQ | None = None) -> FastAPI:
    """The intake for these settings; opens (and migrates) the database unless given a store.

    Call `app.state.intake.close()` when done with an app whose lifespan did not run (tests).
    """
    owns_store = store is None
    if store is None:
        # Serving on a database that takes no writes yet (a standby): /healthz says so with a 503.
        store = open_with_retry(settings, migrate=True, program="producer", writable=False)
        assert store is not None  # no should_stop: it waits until the database answers
    intake = Intake(
        settings=settings,
        store=store,
        depth=WaitingDepth(store, settings.max_queue_depth),
        metrics=IntakeMetrics(store),
        committer=GroupCommitter(store),
        callers=Callers(store, settings.api_token),
        owns_store=owns_store,
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        recorder = PredictionRecorder(store)
        recorder.start()
        yield
        recorder.close()
        intake.close()

    app = FastAPI(title="pqueue intake", version="1", description=DESCRIPTION, lifespan=lifespan)
    app.state.intake = intake
    for router in (jobs.router, queues.router, ops.router, seeds.router):
        app.include_router(router)
    errors.install(app)

    def count_rejection(reason: str) -> None:
        intake.metrics.rejected.labels(reason).inc()

    # Added last = runs first: the caller is known before any body is read, and both guards run
    # before the shortcut hands POST /jobs to its endpoint (producer/submit_path.py).
    app.add_middleware(SubmitShortcut)
    app.add_middleware(BodyGuard, max_bytes=settings.max_body_bytes, on_reject=count_rejection)
    app.add_middleware(KeyGuard, callers=intake.callers)
    _document_security(app, intake.callers)
    return app


def _document_security(app: FastAPI, callers: Callers) -> None:
    """/openapi.json as the intake stands: each operation names the scope it needs
    (`security: [{"bearer": ["read"]}]`, from its Security dependency); while the intake is open
    (no key ever created, no PQ_API_TOKEN) it also lists `{}`: no key needed."""
    documented = app.openapi  # FastAPI's: builds the schema once, then returns app.openapi_schema
    variants: dict[bool, dict[str, Any]] = {}

    def openapi() -> dict[str, Any]:
        if not variants:
            variants[False] = keyed = copy.deepcopy(documented())
            variants[True] = opened = copy.deepcopy(keyed)
            for operations in opened["paths"].values():
                for operation in operations.values():
                    if operation.get("security"):
                        operation["security"].append({})
        app.openapi_schema = variants[callers.is_open]
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
