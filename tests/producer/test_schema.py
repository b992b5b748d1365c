"""schemathesis against /openapi.json: generated requests never get a 5xx, every answer matches
the schema the intake publishes, and requests that break the schema are refused with a 4xx."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from schemathesis import APIOperation, CheckFunction, GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.result import Err, Ok
from schemathesis.errors import InvalidSchema

# The schema is the same whatever the database; one backend keeps this quick.
pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)

# Not positive_data_acceptance: the intake refuses some schema-valid requests on purpose, for
# reasons a schema cannot express (a callback_url that does not parse or whose host is not in
# PQ_CALLBACK_ALLOW, an idempotency key already used with another payload).
VALID_CHECKS: list[CheckFunction] = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
INVALID_CHECKS: list[CheckFunction] = [not_a_server_error, negative_data_rejection]


def run_operations(app: FastAPI, mode: GenerationMode, checks: list[CheckFunction], examples: int) -> list[str]:
    """Drive every operation's strategy with hypothesis; returns the operations run.

    (schemathesis' pytest plugin, from_fixture, does not run under pytest 9.) A failing check
    raises with a curl line that replays the request.
    """
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [_operation(result) for result in schema.get_all_operations()]
    if mode == GenerationMode.NEGATIVE:  # an operation without parameters has nothing to get wrong
        operations = [op for op in operations if op.body or op.query or op.path_parameters or op.headers]
    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def conforms(case: schemathesis.Case[Any]) -> None:
            case.call_and_validate(checks=checks)

        conforms()
    return [operation.label for operation in operations]


def _operation(result: Ok[APIOperation[Any, Any, Any, Any]] | Err[InvalidSchema]) -> APIOperation[Any, Any, Any, Any]:
    """The operation, or the schema error that kept schemathesis from building it."""
    if isinstance(result, Err):
        raise result.err()
    return result.ok()


def test_api__valid_requests_get_answers_that_match_the_schema(app: FastAPI) -> None:
    app.state.intake.store.put_item({"seed": "a job to find"})

    labels = run_operations(app, GenerationMode.POSITIVE, VALID_CHECKS, examples=25)

    assert {"POST /jobs", "POST /jobs/batch", "GET /jobs/{job_id}", "GET /jobs", "GET /next"} <= set(labels)
    assert {"GET /healthz", "GET /metrics", "POST /relay/go"} <= set(labels)


def test_api__invalid_requests_get_a_4xx(app: FastAPI) -> None:
    labels = run_operations(app, GenerationMode.NEGATIVE, INVALID_CHECKS, examples=15)

    assert {"POST /jobs", "POST /jobs/batch", "GET /jobs/{job_id}", "GET /jobs", "GET /next"} <= set(labels)
