"""With PQ_API_TOKEN set, every endpoint but /healthz needs the bearer token."""

from __future__ import annotations

import pytest

from tests.producer.support import AppFactory, client_for

# Auth is decided before any route runs; one backend is enough.
pytestmark = [pytest.mark.anyio, pytest.mark.parametrize("backend", ["sqlite"], indirect=True)]
TOKEN = "s3cret-token"


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "needs an Authorization: Bearer <token> header"),
        ({"Authorization": "Bearer wrong-token"}, "not the one this intake accepts"),
        ({"Authorization": f"Basic {TOKEN}"}, "not the one this intake accepts"),
    ],
    ids=["missing", "wrong", "wrong scheme"],
)
async def test_auth__refuses_without_the_right_token(
    make_app: AppFactory, headers: dict[str, str], message: str
) -> None:
    app = make_app(api_token=TOKEN)
    async with client_for(app, headers=headers) as client:
        responses = [
            await client.post("/jobs", json={"payload": 1}),
            await client.get("/jobs/1"),
            await client.get("/jobs"),
            await client.get("/next"),
            await client.get("/metrics"),
            await client.post("/relay/go"),
            await client.get("/openapi.json"),
            await client.get("/docs"),
        ]

    assert {r.status_code for r in responses} == {401}
    assert all(message in r.json()["detail"] for r in responses)
    assert responses[0].headers["www-authenticate"] == "Bearer"
    assert app.state.intake.store.count_items() == 0


async def test_auth__right_token_is_served(make_app: AppFactory) -> None:
    app = make_app(api_token=TOKEN)
    async with client_for(app, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        submitted = await client.post("/jobs", json={"payload": 1})
        read = await client.get(f"/jobs/{submitted.json()['id']}")
        schema = (await client.get("/openapi.json")).json()

    assert (submitted.status_code, read.status_code) == (202, 200)
    assert schema["components"]["securitySchemes"]["bearer"]["type"] == "http"
    assert schema["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert schema["paths"]["/jobs"]["post"]["security"] == [{"bearer": ["submit"]}]
    assert schema["paths"]["/healthz"]["get"]["security"] == []


async def test_auth__healthz_stays_open(make_app: AppFactory) -> None:
    async with client_for(make_app(api_token=TOKEN)) as client:
        response = await client.get("/healthz")

    assert response.status_code == 200


async def test_auth__oversized_body_without_token_is_401_not_read(make_app: AppFactory) -> None:
    async with client_for(make_app(api_token=TOKEN, max_body_bytes=100)) as client:
        response = await client.post("/jobs", json={"payload": "x" * 1000})

    assert response.status_code == 401
