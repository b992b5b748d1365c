"""The one place errors become HTTP answers: `{"detail": "<one line>", "errors": [...]}`.

pqueue's errors map to 4xx (or 503 when the database is busy or down, 507 when its disk is
full, both with Retry-After); a request that does not match the schema is a 422 naming each
field. Nothing answers with a stack trace.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from pqueue import (
    AmbiguousQueue,
    DatabaseError,
    DatabaseFull,
    IdempotencyConflict,
    InvalidInput,
    InvalidTransition,
    JobNotFound,
    PQError,
    QueueNotFound,
)
from producer.backpressure import RETRY_AFTER_FULL_SECONDS, QueueFull
from producer.schemas import PRINTABLE, ErrorOut, FieldError

log = logging.getLogger("producer")
RETRY_AFTER_BUSY_SECONDS = 2
# A full disk lasts until an operator frees space: partners retrying every 2 s would only add load.
RETRY_AFTER_DISK_FULL_SECONDS = 30


class RequestRejected(PQError):
    """A refusal that names several fields at once (a batch's bad items)."""

    def __init__(self, status: int, errors: list[FieldError], detail: str | None = None) -> None:
        self.status = status
        self.errors = errors
        super().__init__(detail or "; ".join(_line(error) for error in errors))


def field_error(exc: InvalidInput, index: int | None = None) -> FieldError:
    """The FieldError of a store's InvalidInput (`jobs[3].payload: ...` becomes index 3, `payload`)."""
    error = _field_error(exc.field, str(exc))
    return error if index is None else error.model_copy(update={"index": index})


# What each error is called in the pq_intake_rejected counter.
REASONS = {404: "not_found", 405: "method_not_allowed", 409: "conflict", 422: "invalid", 401: "unauthorized"}


def install(app: FastAPI) -> None:
    """Register the handlers on the app."""
    app.add_exception_handler(PQError, _pqueue_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(HTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _unexpected_error)


def _answer(
    request: Request,
    status: int,
    detail: str,
    errors: Sequence[FieldError] | None = None,
    *,
    reason: str | None = None,
    retry_after: int | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    request.app.state.intake.metrics.rejected.labels(reason or REASONS.get(status, "other")).inc()
    body = ErrorOut(detail=detail, errors=list(errors) if errors else None)
    headers = dict(headers or {})
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    return JSONResponse(body.model_dump(exclude_none=True), status_code=status, headers=headers or None)


async def _pqueue_error(request: Request, exc: PQError) -> JSONResponse:
    message = str(exc)
    if isinstance(exc, RequestRejected):
        return _answer(request, exc.status, message, exc.errors)
    if isinstance(exc, QueueFull):
        return _answer(request, 503, message, reason="queue_full", retry_after=RETRY_AFTER_FULL_SECONDS)
    if isinstance(exc, DatabaseFull):
        # 507 Insufficient Storage: nothing was stored, and nothing will be until space is freed.
        request.app.state.intake.refusals.warning(
            "disk_full", f"{request.method} {request.url.path} answered 507: {message}"
        )
        detail = "the queue's database has no space left on its disk; nothing was stored; try again later"
        return _answer(request, 507, detail, reason="disk_full", retry_after=RETRY_AFTER_DISK_FULL_SECONDS)
    if isinstance(exc, DatabaseError):
        # A locked or unreachable database: the job was not stored; the partner may retry.
        request.app.state.intake.refusals.warning(
            "database_unavailable", f"{request.method} {request.url.path} answered 503: {message}"
        )
        detail = f"the queue's database is not available right now ({message}); try again shortly"
        return _answer(request, 503, detail, reason="database_unavailable", retry_after=RETRY_AFTER_BUSY_SECONDS)
    if isinstance(exc, JobNotFound | QueueNotFound):
        return _answer(request, 404, message)
    if isinstance(exc, AmbiguousQueue):
        return _answer(request, 409, message, [FieldError(field="queue", message=message)])
    if isinstance(exc, IdempotencyConflict):
        return _answer(request, 409, message, [FieldError(field="idempotency_key", message=message)])
    if isinstance(exc, InvalidTransition):
        return _answer(request, 409, message)
    if isinstance(exc, InvalidInput):
        return _answer(request, 422, message, [field_error(exc)])
    return _answer(request, 400, message)


def _field_error(field: str, message: str) -> FieldError:
    """A store field such as `jobs[3].payload` becomes index 3, field `payload`."""
    match = re.match(r"^jobs\[(\d+)\]\.(.+)$", field)
    text = message.split(": ", 1)[1] if ": " in message else message
    if match:
        return FieldError(field=match.group(2), message=text, index=int(match.group(1)))
    return FieldError(field=field.removeprefix("job."), message=text)


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = [_describe(error) for error in exc.errors()]
    detail = "; ".join(_line(error) for error in errors)
    return _answer(request, 422, detail, errors)


def _describe(error: dict[str, Any]) -> FieldError:
    location = list(error.get("loc", ()))
    source = location.pop(0) if location and location[0] in ("body", "query", "path", "header") else "body"
    index = None
    if source == "body" and location and isinstance(location[0], int):
        index = location.pop(0)
    if source != "body":  # a repeated query parameter: name it, not its position
        location = [part for part in location if not isinstance(part, int)]
    field = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in location).lstrip(".")
    return FieldError(field=field or source, message=_message(error), index=index)


def _line(error: FieldError) -> str:
    where = f"jobs[{error.index}].{error.field}" if error.index is not None else error.field
    return f"{where}: {error.message}"


def _message(error: dict[str, Any]) -> str:
    kind = error.get("type", "")
    if kind == "extra_forbidden":
        return "unknown field; a job has payload, callback_url, idempotency_key, priority and queue"
    if kind == "missing":
        return "is required"
    if kind == "string_pattern_mismatch":
        if error.get("ctx", {}).get("pattern") == PRINTABLE:
            return "must not contain control characters"
        return "is not a cursor this API returned (next_cursor)"
    message = str(error.get("msg", "is not valid"))
    return message[:1].lower() + message[1:]


async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
    detail = exc.detail if isinstance(exc.detail, str) else "the request was refused"
    if exc.status_code == 404 and detail == "Not Found":  # the router's: no route matched
        detail = f"no such endpoint: {request.method} {request.url.path}; see /docs"
    allowed = (exc.headers or {}).get("Allow")
    if exc.status_code == 405 and allowed:  # the route exists, for other methods
        detail = f"{request.method} {request.url.path} is not allowed; use {allowed} (see /docs)"
        return _answer(request, 405, detail, headers={"Allow": allowed})
    return _answer(request, exc.status_code, detail)


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    log.exception("%s %s failed", request.method, request.url.path)
    return _answer(request, 500, "the intake failed on this request; its log has the details", reason="internal")
