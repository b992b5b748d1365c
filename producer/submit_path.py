"""`POST /jobs` from arrival to answer, in the order a submission goes through it.

Nearly all of the intake's traffic is `POST /jobs`, and FastAPI's own path for a request (its
router, its inner middleware, and the inspection of each declared parameter's annotation on
every request) costs more CPU than the submission itself: reading, validating, storing and
answering it. So this one route is written out by hand, for throughput, with the same answers:

1. `SubmitShortcut` takes `POST /jobs` past the router to `submit_job`. It sits inside
   KeyGuard and BodyGuard (`producer/guards.py`), so the caller is known (`request.state`), and
   the body limit and the JSON checks have already run. The caller needs the `submit` scope.
2. `read_submission` reads the JSON body and the `Idempotency-Key` header, validates them with
   the same pydantic types FastAPI would, and raises the same `RequestValidationError`.
3. The two keys are merged and `Intake.new_job` builds the library's `NewJob` of the caller's
   partner (checking its callback URL); the backpressure gauge refuses it if the queue is full,
   and the partner's rate (`producer/rate_limits.py`) if it is over its rate.
4. The group committer's writer thread (`producer/group_commit.py`) stores it together with the
   submissions that arrived alongside it, in one transaction; the request awaits that commit on
   the event loop, with no threadpool hop.
5. The answer: 202 once committed, or 200 with the partner's first job for a repeated key.

A step that refuses raises, and the shortcut hands the error to the app's handler for its class
(`producer/errors.py`: 403, 409, 422, 429, 503, 507 …), as FastAPI's ExceptionMiddleware would;
an unexpected error goes on to ServerErrorMiddleware, which answers the usual one-line 500.

The route stays declared in `producer/routes/jobs.py`: it is what /docs and /openapi.json
describe (`OPENAPI`, at the end, documents the body and header FastAPI would have derived), and
the router still serves what the shortcut leaves to it (`/jobs/`, an app mounted under a prefix).
"""

from __future__ import annotations

import json
from typing import Any

from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import TypeAdapter, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from pqueue import InvalidInput, PutResult, Status
from producer import errors
from producer.callers import require
from producer.deps import Intake, identity_of, intake_of
from producer.schemas import IdempotencyKey, JobIn, Submitted

KEY_HEADER = "Idempotency-Key"
KEY_HEADER_MEANING = "the same as the body's idempotency_key (either, or both equal)"
_KEY = TypeAdapter(IdempotencyKey)


# 1. Arrival: past the router.


class SubmitShortcut:
    """Sends `POST /jobs` to `submit_job` directly; every other request goes on to the app."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Only the exact path with no root_path: anything else (/jobs/, a mounted app) is routed.
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != "/jobs" or scope.get("root_path"):
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        try:
            response = await submit_job(request)
        except Exception as exc:
            handled = await errors.handled(request, exc)
            if handled is None:
                raise  # ServerErrorMiddleware answers 500 through the app's Exception handler
            response = handled
        await response(scope, receive, send)


# 2. to 5., in order: the endpoint.


async def submit_job(request: Request) -> Response:
    """Store one job; 202 only once it is committed (200 with the first job for a repeated key)."""
    intake = intake_of(request)
    identity = identity_of(request)
    partner = require(identity.caller, "submit").partner
    job, header_key = await read_submission(request)
    key = _merged_key(job.idempotency_key, header_key)
    new_job = intake.new_job(job, partner, "", key)
    if intake.depth.needs_read():
        await run_in_threadpool(intake.depth.read)
    intake.depth.check_room_cached(1)
    quota = intake.rates.take(partner, identity.rate_per_minute, 1)
    put = await intake.committer.submit(new_job)  # shares a commit with concurrent submissions
    if put.created:
        answer = created(intake, put, new_job.queue, key)
    else:
        answer = await run_in_threadpool(repeated, intake, put)
    headers = {"Location": f"/jobs/{put.id}"} | (quota.headers() if quota else {})
    return JSONResponse(answer.model_dump(mode="json"), status_code=202 if put.created else 200, headers=headers)


# 2. Read and validate the body and the key, as FastAPI's body and header parameters would.


async def read_submission(request: Request) -> tuple[JobIn, str | None]:
    """The validated job and the Idempotency-Key header; RequestValidationError names every bad field.

    BodyGuard has already refused a body that is not JSON (400, 413, 415), so parsing succeeds.
    """
    errors: list[dict[str, Any]] = []
    key = _header_key(request.headers.get(KEY_HEADER), errors)
    body = await request.body()
    job = _job(json.loads(body), errors) if body else None
    if not body:
        errors.append({"type": "missing", "loc": ("body",), "msg": "Field required", "input": None})
    if errors or job is None:
        raise RequestValidationError(errors)
    return job, key


def _header_key(value: str | None, errors: list[dict[str, Any]]) -> str | None:
    """The header's key, validated; a bad one is reported at FastAPI's location `header…`."""
    if value is None:
        return None
    try:
        return _KEY.validate_python(value)
    except ValidationError as exc:
        errors.extend(_located(exc, ("header", KEY_HEADER)))
        return None


def _job(document: Any, errors: list[dict[str, Any]]) -> JobIn | None:
    """The body as a JobIn; bad fields are reported at FastAPI's location `body…`."""
    try:
        return JobIn.model_validate(document, from_attributes=True)  # as FastAPI validates bodies
    except ValidationError as exc:
        errors.extend(_located(exc, ("body",)))
        return None


def _located(exc: ValidationError, prefix: tuple[str, ...]) -> list[dict[str, Any]]:
    """Pydantic's errors under `prefix`, so the 422 names each field as FastAPI's would."""
    return [{**error, "loc": (*prefix, *error["loc"])} for error in exc.errors(include_url=False)]


# 3. The key the job is stored under.


def _merged_key(body_key: str | None, header_key: str | None) -> str | None:
    """The body's or the header's key; a partner that sends two different ones gets a 422."""
    if body_key is not None and header_key is not None and body_key != header_key:
        raise InvalidInput("idempotency_key", "differs from the Idempotency-Key header; send one, or both equal")
    return body_key or header_key


# 5. The answer (POST /jobs/batch answers each of its jobs the same way).


def created(intake: Intake, put: PutResult, queue: str | None, key: str | None) -> Submitted:
    """A new job's answer, built from what was submitted: no read needed."""
    intake.depth.added(1)
    intake.metrics.accepted.labels("created").inc()
    return Submitted(id=put.id, status=Status.UNPROCESSED, queue=queue or intake.settings.queue, idempotency_key=key)


def repeated(intake: Intake, put: PutResult) -> Submitted:
    """The first job with this key, read from the database (blocking)."""
    intake.metrics.accepted.labels("duplicate").inc()
    first = intake.store.get_job(put.id)
    return Submitted(id=first.id, status=first.status, queue=first.queue, idempotency_key=first.idempotency_key)


# What /openapi.json says about the body and header read by hand above.

OPENAPI: dict[str, Any] = {
    "parameters": [
        {
            "name": KEY_HEADER,
            "in": "header",
            "required": False,
            "schema": {
                "anyOf": [_KEY.json_schema(), {"type": "null"}],
                "title": KEY_HEADER,
                "description": KEY_HEADER_MEANING,
            },
            "description": KEY_HEADER_MEANING,
        }
    ],
    # JobIn is in components/schemas: POST /jobs/batch declares list[JobIn].
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/JobIn"}}},
    },
}
