"""The one place errors become HTTP answers: `{"detail": "<one line>", "errors": [...]}`.

pqueue's errors map to 4xx (or 503 when the database is busy or down, 507 when its disk is
full, both with Retry-After); a request that does not match the schema is a 422 naming each
field; a key that lets nobody in is a 401, a key without the route's scope a 403, a partner over
its rate a 429 with Retry-After and the RateLimit headers. Nothing answers with a stack trace.
"""

from __future__ import annotations

import inspect
import logging
import re
from collections.abc import Callable, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.responses import Response

from pqueue import (
    AmbiguousQueue,
    DatabaseError,
    DatabaseFull,
    IdempotencyConflict,
    InvalidInput,
    InvalidTransition,
    JobNotFound,
    KeyRejected,
    PQError,
    QueueNotFound,
)
from producer.backpressure import RETRY_AFTER_FULL_SECONDS, QueueFull
from producer.callers import Forbidden, Unauthorized
from producer.rate_limits import RateLimited
from producer.schemas import PARTNER_NAME, PRINTABLE, ErrorOut, FieldError

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
REASONS = {
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    422: "invalid",
    429: "rate_limited",
}


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
    refused = _refused_caller(request, exc)
    if refused is not None:
        return refused
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


def _refused_caller(request: Request, exc: PQError) -> JSONResponse | None:
    """401, 403 or 429 when the caller's key, scope or rate refused the request, else None."""
    message = str(exc)
    if isinstance(exc, Unauthorized | KeyRejected):
        return _answer(request, 401, message, headers={"WWW-Authenticate": "Bearer"})
    if isinstance(exc, Forbidden):
        challenge = f'Bearer error="insufficient_scope", scope="{exc.scope}"'
        return _answer(request, 403, message, headers={"WWW-Authenticate": challenge})
    if isinstance(exc, RateLimited):
        return _answer(request, 429, message, retry_after=exc.retry_after, headers=exc.quota.headers())
    return None


Handler = Callable[..., Any]  # (request, exc) -> Response, or an awaitable of one


async def handled(request: Request, exc: Exception) -> Response | None:
    """The app's answer to `exc`, for code that runs outside FastAPI's ExceptionMiddleware (the
    key guard, POST /jobs's shortcut); None when only ServerErrorMiddleware handles it (re-raise)."""
    handler = _handler_for(request.scope["app"], exc)
    if handler is None:
        return None
    if inspect.iscoroutinefunction(handler):
        response = await handler(request, exc)
    else:
        response = await run_in_threadpool(handler, request, exc)
    assert isinstance(response, Response)
    return response


def _handler_for(app: Starlette, exc: Exception) -> Handler | None:
    """The app's handler for the exception's nearest class, as ExceptionMiddleware looks it up
    (the handler for Exception itself belongs to ServerErrorMiddleware)."""
    for cls in type(exc).__mro__:
        if cls is Exception:
            return None
        handler: Handler | None = app.exception_handlers.get(cls)
        if handler is not None:
            return handler
    return None


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
    if kind == "extra_forbidden" and tuple(error.get("loc", ()))[-1:] == ("partner",):
        return "a job's partner is the one its key belongs to, never one named in the body; leave it out"
    if kind == "extra_forbidden":
        return "unknown field; a job has payload, callback_url, idempotency_key, priority and queue"
    if kind == "missing":
        return "is required"
    if kind == "string_pattern_mismatch":
        pattern = error.get("ctx", {}).get("pattern")
        if pattern == PRINTABLE:
            return "must not contain control characters"
        if pattern == PARTNER_NAME:
            return "is not a partner name (1 to 64 of a-z, 0-9 and '-')"
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
