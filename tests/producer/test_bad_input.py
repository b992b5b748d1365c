"""Bad input gets one clear 4xx and stores nothing: a table of what partners get wrong."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.producer.support import AppFactory, client_for

pytestmark = pytest.mark.anyio
JSON_TYPE = {"content-type": "application/json"}


@dataclass
class Bad:
    """One bad request and the answer it must get."""

    name: str
    status: int
    message: str
    json: Any = None
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    method: str = "POST"
    path: str = "/jobs"
    settings: dict[str, Any] = field(default_factory=dict)
    chunks: list[bytes] | None = None


def raw(text: str) -> bytes:
    return text.encode()


CASES = [
    Bad("malformed json", 400, "not valid JSON: Expecting", content=raw('{"payload": '), headers=JSON_TYPE),
    Bad(
        "text body",
        415,
        "Content-Type: application/json (got text/plain)",
        content=b"hi",
        headers={"content-type": "text/plain"},
    ),
    Bad("no content type", 415, "(got no Content-Type)", content=raw('{"payload": 1}')),
    Bad(
        "form encoded",
        415,
        "got application/x-www-form-urlencoded",
        content=b"payload=1",
        headers={"content-type": "application/x-www-form-urlencoded"},
    ),
    Bad(
        "declared too large",
        413,
        "larger than 1024 bytes (PQ_MAX_BODY_BYTES)",
        json={"payload": "x" * 2000},
        settings={"max_body_bytes": 1024},
    ),
    Bad(
        "streamed too large",
        413,
        "larger than 1024 bytes",
        chunks=[b'{"payload": "', b"x" * 800, b"x" * 800, b'"}'],
        headers=JSON_TYPE,
        settings={"max_body_bytes": 1024},
    ),
    Bad("empty body", 422, "body: is required", content=b"", headers=JSON_TYPE),
    Bad("missing payload", 422, "payload: is required", json={"priority": 1}),
    Bad("unknown field", 422, "colour: unknown field; a job has payload", json={"payload": 1, "colour": "red"}),
    Bad("body is a list", 422, "body: input should be a valid dictionary", json=[{"payload": 1}]),
    Bad("priority as text", 422, "priority: input should be a valid integer", json={"payload": 1, "priority": "high"}),
    Bad("priority as fraction", 422, "priority: input should be a valid integer", json={"payload": 1, "priority": 1.5}),
    Bad("priority as boolean", 422, "priority: input should be a valid integer", json={"payload": 1, "priority": True}),
    Bad(
        "priority out of range",
        422,
        "priority: input should be less than or equal to 2147483647",
        json={"payload": 1, "priority": 2**31},
    ),
    Bad("empty queue", 422, "queue: string should have at least 1 character", json={"payload": 1, "queue": ""}),
    Bad("long queue", 422, "queue: string should have at most 200 characters", json={"payload": 1, "queue": "q" * 201}),
    Bad(
        "key with newline",
        422,
        "idempotency_key: must not contain control characters",
        json={"payload": 1, "idempotency_key": "a\nb"},
    ),
    Bad(
        "key as number",
        422,
        "idempotency_key: input should be a valid string",
        json={"payload": 1, "idempotency_key": 5},
    ),
    Bad(
        "keys disagree",
        422,
        "differs from the Idempotency-Key header",
        json={"payload": 1, "idempotency_key": "a"},
        headers={"Idempotency-Key": "b"},
    ),
    Bad(
        "key header with control character",
        422,
        "Idempotency-Key: must not contain control characters",
        json={"payload": 1},
        headers={"Idempotency-Key": "a\x7fb"},
    ),
    Bad(
        "key header and body both wrong",
        422,
        "Idempotency-Key: string should have at most 200 characters; priority: input should be a valid integer",
        json={"payload": 1, "priority": "high"},
        headers={"Idempotency-Key": "k" * 201},
    ),
    Bad("body is null", 422, "body: input should be a valid dictionary or object", content=b"null", headers=JSON_TYPE),
    Bad(
        "callback not http",
        422,
        "callback_url: 'ftp://partner/x' is not an http or https URL",
        json={"payload": 1, "callback_url": "ftp://partner/x"},
    ),
    Bad(
        "callback without host",
        422,
        "callback_url: 'https:///x' names no host",
        json={"payload": 1, "callback_url": "https:///x"},
    ),
    Bad(
        "callback bad port",
        422,
        "has an invalid host or port",
        json={"payload": 1, "callback_url": "http://partner:99999/x"},
    ),
    Bad(
        "callback host not allowed",
        422,
        "host 'evil.example' is not allowed; use one of partner.example",
        json={"payload": 1, "callback_url": "https://evil.example/hook"},
        settings={"callback_allow": "partner.example"},
    ),
    Bad("nested too deep", 422, "nests deeper than 32 levels", json={"payload": json.loads("[" * 40 + "]" * 40)}),
    Bad(
        "nested past the parser",
        422,
        "nests deeper than 32 levels",
        content=raw('{"payload": ' + "[" * 5000 + "]" * 5000 + "}"),
        headers=JSON_TYPE,
    ),
    Bad("NUL in payload", 422, "payload.note: contains the NUL character", json={"payload": {"note": "a\x00b"}}),
    Bad("NUL in a key", 422, "payload: a key contains the NUL character", json={"payload": {"a\x00": 1}}),
    Bad(
        "lone surrogate",
        422,
        "payload[0]: contains a lone surrogate",
        content=raw('{"payload": ["\\ud800"]}'),
        headers=JSON_TYPE,
    ),
    Bad("NaN payload", 422, "payload: is not JSON-serialisable", content=raw('{"payload": NaN}'), headers=JSON_TYPE),
    Bad(
        "number too long",
        400,
        "not valid JSON: Exceeds the limit",
        content=raw('{"payload": ' + "9" * 5000 + "}"),
        headers=JSON_TYPE,
    ),
    Bad("empty batch", 422, "List should have at least 1 item".lower(), json=[], path="/jobs/batch"),
    Bad("batch too long", 422, "at most 1000 items", json=[{"payload": i} for i in range(1001)], path="/jobs/batch"),
    Bad(
        "batch item wrong",
        422,
        "jobs[1].priority: input should be a valid integer",
        json=[{"payload": 1}, {"payload": 2, "priority": "x"}],
        path="/jobs/batch",
    ),
    Bad(
        "batch with key header",
        422,
        "a batch takes an idempotency_key per job",
        json=[{"payload": 1}],
        headers={"Idempotency-Key": "k"},
        path="/jobs/batch",
    ),
    Bad("job id not a number", 422, "job_id: input should be a valid integer", method="GET", path="/jobs/abc"),
    Bad("job id zero", 422, "job_id: input should be greater than or equal to 1", method="GET", path="/jobs/0"),
    Bad(
        "list limit zero", 422, "limit: input should be greater than or equal to 1", method="GET", path="/jobs?limit=0"
    ),
    Bad("list unknown status", 422, "status: input should be 'unprocessed'", method="GET", path="/jobs?status=done"),
    Bad("list bad cursor", 422, "cursor: is not a cursor this API returned", method="GET", path="/jobs?cursor=abc"),
    Bad(
        "next limit too big",
        422,
        "limit: input should be less than or equal to 1000",
        method="GET",
        path="/next?limit=5000",
    ),
    Bad("unknown endpoint", 404, "no such endpoint: POST /job", json={"payload": 1}, path="/job"),
    Bad("wrong method", 405, "DELETE /jobs/1 is not allowed; use GET (see /docs)", method="DELETE", path="/jobs/1"),
]


async def stream(chunks: list[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


# Every case runs on SQLite; on PostgreSQL, the ones whose content a database could choke on
# (the rest are refused before any store call, whatever the backend).
ON_POSTGRES = {"NUL in payload", "NUL in a key", "lone surrogate", "NaN payload", "number too long", "keys disagree"}
RUNS = [pytest.param("sqlite", case, id=f"sqlite-{case.name}") for case in CASES] + [
    pytest.param("postgresql", case, id=f"postgresql-{case.name}", marks=pytest.mark.postgres)
    for case in CASES
    if case.name in ON_POSTGRES
]


@pytest.mark.parametrize(("backend", "case"), RUNS, indirect=["backend"])
async def test_bad_input__clear_4xx_and_nothing_stored(case: Bad, make_app: AppFactory) -> None:
    app = make_app(**case.settings)
    store = app.state.intake.store
    store.put_item({"already": "there"})
    async with client_for(app) as client:
        body: Any = stream(case.chunks) if case.chunks is not None else case.content
        if case.json is not None:
            response = await client.request(case.method, case.path, json=case.json, headers=case.headers)
        else:
            response = await client.request(case.method, case.path, content=body, headers=case.headers)

    assert response.status_code == case.status, response.text
    assert case.message in response.json()["detail"]
    assert store.count_items() == 1
    if case.status in (400, 413, 415, 422):  # the request itself refused: its field(s) named
        assert response.json()["errors"], response.text
