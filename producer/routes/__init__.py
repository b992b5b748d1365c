"""One module per resource: jobs, the queue's order and the relay, health and metrics."""

from __future__ import annotations

from typing import Any

from producer.schemas import ErrorOut

_MEANINGS = {
    400: "the body is not valid JSON",
    401: "the key is missing, unknown, revoked or expired, or its partner is disabled",
    403: "the key lacks the scope this operation needs",
    404: "no such job (another partner's job is answered the same)",
    409: "the idempotency key is already used with another payload",
    413: "the body is larger than PQ_MAX_BODY_BYTES",
    415: "the body is not sent as application/json",
    422: "a field is missing, unknown or has a bad value",
    429: "the partner is over its rate: nothing was stored; see Retry-After and RateLimit",
    503: "the queue is full or its database is not available; see Retry-After",
    507: "the disk holding the queue's database is full: nothing was stored; see Retry-After",
}


def errors(*codes: int, also: dict[int, dict[str, Any]] | None = None) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for the error answers a route can give (401 and 403 always: keys and scopes), plus `also`."""
    responses: dict[int | str, dict[str, Any]] = {code: entry for code, entry in (also or {}).items()}
    for code in sorted({401, 403, *codes}):
        responses[code] = {"model": ErrorOut, "description": _MEANINGS[code]}
    return responses
