"""create_app(settings): the intake's FastAPI app, wired to one store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from pqueue import PersistentQ, Settings, open_with_retry
from producer import errors
from producer.backpressure import WaitingDepth
from producer.deps import Intake
from producer.group_commit import GroupCommitter
from producer.guards import BodyGuard, TokenGuard
from producer.metrics import IntakeMetrics
from producer.routes import jobs, ops, queues, seeds
from producer.submit_path import SubmitShortcut

DESCRIPTION = """\
Submit requests for the licensed algorithm and follow them until their outcome.

A `202` means the job is committed to the database. Repeat a request with the same
`idempotency_key` (or `Idempotency-Key` header) safely: you get the first job back with `200`.
Every error answers `{"detail": "...", "errors": [...]}`; a `503` carries `Retry-After`.
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
        owns_store=owns_store,
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        intake.close()

    app = FastAPI(title="pqueue intake", version="1", description=DESCRIPTION, lifespan=lifespan)
    app.state.intake = intake
    for router in (jobs.router, queues.router, ops.router, seeds.router):
        app.include_router(router)
    errors.install(app)

    def count_rejection(reason: str) -> None:
        intake.metrics.rejected.labels(reason).inc()

    # Added last = runs first: the token is checked before any body is read, and both guards
    # run before the shortcut hands POST /jobs to its endpoint (producer/submit_path.py).
    app.add_middleware(SubmitShortcut)
    app.add_middleware(BodyGuard, max_bytes=settings.max_body_bytes, on_reject=count_rejection)
    app.add_middleware(TokenGuard, token=settings.api_token, on_reject=count_rejection)
    if settings.api_token:
        _document_bearer_auth(app)
    return app


def _document_bearer_auth(app: FastAPI) -> None:
    """Say in /openapi.json that every operation but /healthz needs the bearer token."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            schema.setdefault("components", {})["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
            for path, operations in schema["paths"].items():
                for operation in operations.values():
                    operation["security"] = [] if path == "/healthz" else [{"bearer": []}]
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
