"""A locked or unreachable database: 503 with Retry-After, never a 500, and recovery by itself."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator

import anyio
import pytest

from pqueue import Settings
from tests.faults.blackhole import NetworkProxy
from tests.postgres import require_postgres
from tests.producer.support import AppFactory, client_for, eventually

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_locked_sqlite__503_with_retry_after_then_recovers(make_app: AppFactory, settings: Settings) -> None:
    app = make_app(write_timeout=0.5)
    store = app.state.intake.store
    async with client_for(app) as client:
        first = await client.post("/jobs", json={"payload": "before"})
        other_writer = sqlite3.connect(settings.resolved_database_url.removeprefix("sqlite:///"), isolation_level=None)
        other_writer.execute("BEGIN IMMEDIATE")  # holds the write lock until we let go
        try:
            results: list[tuple[int, str | None]] = []

            async def submit(n: int) -> None:
                response = await client.post("/jobs", json={"payload": n})
                results.append((response.status_code, response.headers.get("retry-after")))

            async with anyio.create_task_group() as group:
                for n in range(4):
                    group.start_soon(submit, n)
            health = await client.get("/healthz")
            read = await client.get(f"/jobs/{first.json()['id']}")
        finally:
            other_writer.execute("ROLLBACK")
            other_writer.close()
        after = await client.post("/jobs", json={"payload": "after"})

    assert [status for status, _ in results] == [503] * 4
    assert all(retry_after and int(retry_after) > 0 for _, retry_after in results)
    assert (health.status_code, read.status_code) == (200, 200)  # readers are not blocked by a writer
    assert after.status_code == 202
    assert [job.payload for job in store.get_all_items(oldest_first=True).items] == ["before", "after"]


@pytest.fixture
def proxy() -> Iterator[NetworkProxy]:
    forwarder = NetworkProxy.to_url(require_postgres())
    yield forwarder
    forwarder.close()


@pytest.mark.parametrize("backend", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True)
async def test_unreachable_postgres__503_then_recovers(
    make_app: AppFactory, db_env: dict[str, str], proxy: NetworkProxy, make_settings: Callable[..., Settings]
) -> None:
    through_proxy = proxy.url_through(db_env["PQ_DATABASE_URL"])
    app = make_app(database_url=through_proxy)
    store = app.state.intake.store
    async with client_for(app) as client:
        first = await client.post("/jobs", json={"payload": "before"})
        proxy.cut()
        down = [
            await client.post("/jobs", json={"payload": "while down"}),
            await client.post("/jobs/batch", json=[{"payload": "while down"}]),
            await client.get(f"/jobs/{first.json()['id']}"),
            await client.get("/healthz"),
            await client.get("/metrics"),
        ]
        proxy.heal()

        async def accepted() -> bool:
            return (await client.post("/jobs", json={"payload": "after"})).status_code == 202

        await eventually(accepted, what="the intake to store jobs again")

    assert first.status_code == 202
    assert [r.status_code for r in down] == [503] * 5
    assert all(int(r.headers["retry-after"]) > 0 for r in down)
    assert "database is not available right now" in down[0].json()["detail"]
    payloads = [job.payload for job in store.get_all_items(oldest_first=True).items]
    assert payloads[0] == "before" and "while down" not in payloads and "after" in payloads
