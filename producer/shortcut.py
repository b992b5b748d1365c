"""`POST /jobs` straight to its endpoint, past FastAPI's router.

FastAPI's routing and its inner middleware cost about as much CPU per request as the whole
submission (reading, validating, storing and answering it), and `POST /jobs` is nearly all of
the intake's traffic. This middleware sits inside TokenGuard and BodyGuard, so the token, the
body limit and the JSON checks apply as before, and calls the same endpoint the router would.
An error goes to the app's own exception handler for its class, as FastAPI's
ExceptionMiddleware would send it; an unexpected one propagates to ServerErrorMiddleware and
becomes the usual one-line 500. The route stays declared on the app: it is what /docs and
/openapi.json describe.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

Endpoint = Callable[[Request], Awaitable[Response]]
Handler = Callable[..., Any]  # (request, exc) -> Response, or an awaitable of one


class SubmitShortcut:
    """Sends `POST /jobs` to `endpoint` directly; every other request goes on to the app."""

    def __init__(self, app: ASGIApp, *, endpoint: Endpoint) -> None:
        self.app = app
        self.endpoint = endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Only the exact path with no root_path: anything else (/jobs/, a mounted app) is routed.
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != "/jobs" or scope.get("root_path"):
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        try:
            response = await self.endpoint(request)
        except Exception as exc:
            handle = _handler_for(scope["app"], exc)
            if handle is None:
                raise  # ServerErrorMiddleware answers 500 through the app's Exception handler
            response = await _call(handle, request, exc)
        await response(scope, receive, send)


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


async def _call(handler: Handler, request: Request, exc: Exception) -> Response:
    """Run a handler as ExceptionMiddleware does: awaited if async, else in the threadpool."""
    if inspect.iscoroutinefunction(handler):
        response = await handler(request, exc)
    else:
        response = await run_in_threadpool(handler, request, exc)
    assert isinstance(response, Response)
    return response
