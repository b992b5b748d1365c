"""ASGI middleware that turns requests away before any route runs: a caller without a key that
lets it in, a body that is too large, not JSON, or nested too deep.

Both are plain ASGI (not BaseHTTPMiddleware) so a rejected body is never read whole and a
refused request costs no thread.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pqueue import PQError
from producer import errors
from producer.callers import Callers

MAX_JSON_DEPTH = 32
OPEN_PATHS = frozenset({"/healthz"})
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})

Reject = Callable[[str], None]  # counts a rejection by reason


class KeyGuard:
    """Every path but /healthz: finds who calls (producer/callers.py) before the body is read,
    and puts it on the request's state as `identity`; a key that lets nobody in is answered 401."""

    def __init__(self, app: ASGIApp, *, callers: Callers) -> None:
        self.app = app
        self.callers = callers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        try:
            identity = await self.callers.resolve(Headers(scope=scope).get("authorization"))
        except PQError as exc:  # 401, or 503 while the database does not answer
            request = Request(scope, receive)
            response = await errors.handled(request, exc)
            if response is None:
                raise
            await response(scope, receive, send)
            return
        scope.setdefault("state", {})["identity"] = identity
        await self.app(scope, receive, send)


class BodyGuard:
    """Reads a request body up to PQ_MAX_BODY_BYTES and checks it is sane JSON, then replays it."""

    def __init__(self, app: ASGIApp, *, max_bytes: int, on_reject: Reject, max_depth: int = MAX_JSON_DEPTH) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_depth = max_depth
        self.on_reject = on_reject

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in BODY_METHODS:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        declared = headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await self._reject(scope, receive, send, 413, self._too_large())
            return
        body = await self._read(receive)
        if body is None:  # the client went away, or sent more than it may
            await self._reject(scope, receive, send, 413, self._too_large())
            return
        problem = self._check(body, headers.get("content-type"))
        if problem is not None:
            await self._reject(scope, receive, send, *problem)
            return
        await self.app(scope, _replay(body, receive), send)

    def _too_large(self) -> str:
        return f"the request body is larger than {self.max_bytes} bytes (PQ_MAX_BODY_BYTES); send less"

    async def _read(self, receive: Receive) -> bytes | None:
        """The whole body, or None as soon as it passes the limit (the rest is never read)."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    def _check(self, body: bytes, content_type: str | None) -> tuple[int, str] | None:
        """(status, message) for a body we refuse, else None."""
        if not body:
            return None
        if not _is_json(content_type):
            got = content_type or "no Content-Type"
            return 415, f"send the body as JSON with Content-Type: application/json (got {got})"
        try:
            document = json.loads(body)
        except RecursionError:
            return 422, f"the JSON body nests deeper than {self.max_depth} levels"
        except ValueError as exc:  # JSONDecodeError, bad UTF-8, an integer too long to read
            return 400, f"the body is not valid JSON: {exc}"
        if surely_fine(body, self.max_depth):
            return None
        problem = find_problem(document, self.max_depth)
        return (422, problem) if problem else None

    async def _reject(self, scope: Scope, receive: Receive, send: Send, status: int, message: str) -> None:
        reasons = {413: "too_large", 415: "unsupported_media_type", 400: "malformed_json", 422: "invalid"}
        self.on_reject(reasons.get(status, "invalid"))
        # As every refusal of a request: the line, and the field at fault (here the body itself).
        body = {"detail": message, "errors": [{"field": "body", "message": message}]}
        await JSONResponse(body, status_code=status)(scope, receive, send)


def _is_json(content_type: str | None) -> bool:
    if not content_type:
        return False
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type == "application/json" or (media_type.startswith("application/") and media_type.endswith("+json"))


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive() that hands the app the body we already read, then defers to the client."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


def _where(path: tuple[Any, ...]) -> str:
    text = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in path)
    return text.lstrip(".") or "the body"


def surely_fine(body: bytes, max_depth: int) -> bool:
    """True when the raw body cannot hold what find_problem looks for, so the walk can be skipped.

    Without a backslash there are no escapes (`\\u0000`, `\\ud800`), and ASCII bytes decode to no
    surrogate in any encoding json.loads accepts; a raw NUL is not valid JSON in a string. The
    body cannot nest deeper than its number of brackets (those inside strings count too).
    """
    return body.isascii() and b"\\" not in body and body.count(b"[") + body.count(b"{") <= max_depth


def find_problem(document: Any, max_depth: int) -> str | None:
    """Why a parsed JSON body cannot be stored, or None: too deep, or a string no database keeps
    (NUL, which PostgreSQL refuses, or a lone surrogate, which is not valid UTF-8)."""
    stack: list[tuple[Any, int, tuple[Any, ...]]] = [(document, 0, ())]
    while stack:
        value, depth, path = stack.pop()
        if isinstance(value, dict | list):
            if depth >= max_depth:
                return f"{_where(path)}: the JSON body nests deeper than {max_depth} levels"
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, item in items:
                if isinstance(key, str) and (problem := _string_problem(key)):
                    return f"{_where(path)}: a key {problem}"
                stack.append((item, depth + 1, (*path, key)))
        elif isinstance(value, str) and (problem := _string_problem(value)):
            return f"{_where(path)}: {problem}"
    return None


def _string_problem(text: str) -> str | None:
    if "\x00" in text:
        return "contains the NUL character (\\u0000), which cannot be stored"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "contains a lone surrogate (\\ud800-\\udfff), which is not valid Unicode"
    return None
