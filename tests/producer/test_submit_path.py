"""POST /jobs skips FastAPI's router (producer/submit_path.py); its answers, errors included, are the router's."""

from __future__ import annotations

import logging

import httpx
import pytest

from pqueue import NewJob, PutResult
from tests.producer.support import AppFactory, client_for

pytestmark = [pytest.mark.anyio, pytest.mark.parametrize("backend", ["sqlite"], indirect=True)]


async def test_shortcut__unexpected_error_is_a_one_line_500_with_the_traceback_logged(
    make_app: AppFactory, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app()

    async def broken(job: NewJob) -> PutResult:
        raise RuntimeError("disk on fire")

    app.state.intake.committer.submit = broken
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    with caplog.at_level(logging.ERROR, logger="producer"):
        async with httpx.AsyncClient(transport=transport, base_url="http://intake") as client:
            response = await client.post("/jobs", json={"payload": 1})
            metrics = (await client.get("/metrics")).text

    assert response.status_code == 500
    assert response.json() == {"detail": "the intake failed on this request; its log has the details"}
    assert "RuntimeError: disk on fire" in caplog.text
    assert 'pq_intake_rejected_total{reason="internal"} 1.0' in metrics


async def test_shortcut__other_paths_and_methods_still_go_through_the_router(make_app: AppFactory) -> None:
    app = make_app()
    async with client_for(app) as client:
        wrong_method = await client.put("/jobs", json={"payload": 1})
        batch = await client.post("/jobs/batch", json=[{"payload": 1}])

    assert wrong_method.status_code == 405
    assert batch.status_code == 202
    assert app.state.intake.store.count_items() == 1
