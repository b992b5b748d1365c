# mypy: disable-error-code="import-not-found", allow-untyped-decorators
# (it runs in bench/.venv-peers; the project environment lacks these libraries)
"""procrastinate and PGQueuer: puts, batch puts, and a worker draining a backlog of no-op jobs."""

from __future__ import annotations

import asyncio
import logging
import time
from importlib.metadata import version
from typing import Any

from bench.payloads import payload, payload_text

BATCH = 1000
PG_DURABILITY = "fsync=on, synchronous_commit=on"


def procrastinate(test: str, n: int, conninfo: str) -> dict[str, Any]:
    return asyncio.run(_procrastinate(test, n, conninfo))


async def _procrastinate(test: str, n: int, conninfo: str) -> dict[str, Any]:
    import procrastinate as pc

    logging.getLogger("procrastinate").setLevel(logging.WARNING)
    app = pc.App(connector=pc.PsycopgConnector(conninfo=conninfo))
    ran = 0

    @app.task(name="noop")
    def noop(job: dict[str, Any]) -> None:
        nonlocal ran
        ran += 1

    result = {
        "version": version("procrastinate"),
        "durability": PG_DURABILITY,
        "delivery": "at-least-once (stalled jobs retried once their worker is seen dead)",
    }
    async with app.open_async():
        await app.schema_manager.apply_schema_async()
        deferrer = noop.configure(lock="license") if test == "drain_cap1" else noop
        started = time.perf_counter()
        if test == "put_one":
            for number in range(n):
                await deferrer.defer_async(job=payload(number))
            return {**result, "value": n / (time.perf_counter() - started)}
        for start in range(0, n, BATCH):
            await deferrer.batch_defer_async(*[{"job": payload(i)} for i in range(start, min(n, start + BATCH))])
        if test == "put_batch":
            return {**result, "value": n / (time.perf_counter() - started)}
        started = time.perf_counter()
        await app.run_worker_async(wait=False, concurrency=1, install_signal_handlers=False, delete_jobs="never")
        elapsed = time.perf_counter() - started
    if ran != n:
        raise RuntimeError(f"procrastinate ran {ran} of {n}")
    if test == "drain_cap1":
        result["note"] = "cap: every job has lock='license' (procrastinate runs one job per lock at a time)"
    return {**result, "value": n / elapsed}


def pgqueuer(test: str, n: int, conninfo: str) -> dict[str, Any]:
    return asyncio.run(_pgqueuer(test, n, conninfo))


async def _pgqueuer(test: str, n: int, conninfo: str) -> dict[str, Any]:
    import asyncpg
    from pgqueuer import AsyncpgDriver, Queries, QueueManager
    from pgqueuer.domain.types import QueueExecutionMode

    logging.getLogger("pgqueuer").setLevel(logging.WARNING)
    connection = await asyncpg.connect(conninfo)
    driver = AsyncpgDriver(connection)
    queries = Queries(driver)
    await queries.install()
    result = {
        "version": version("pgqueuer"),
        "durability": PG_DURABILITY + " (durable: logged tables)",
        "delivery": "at-least-once (a job whose heartbeat stops is picked again)",
    }
    started = time.perf_counter()
    if test == "put_one":
        for number in range(n):
            await queries.enqueue("noop", payload_text(number).encode())
        await connection.close()
        return {**result, "value": n / (time.perf_counter() - started)}
    for start in range(0, n, BATCH):
        count = min(n, start + BATCH) - start
        await queries.enqueue(
            ["noop"] * count, [payload_text(i).encode() for i in range(start, start + count)], [0] * count
        )
    if test == "put_batch":
        await connection.close()
        return {**result, "value": n / (time.perf_counter() - started)}
    manager = QueueManager(queries)
    ran = 0

    @manager.entrypoint("noop", concurrency_limit=1 if test == "drain_cap1" else 0)
    async def noop(job: Any) -> None:
        nonlocal ran
        ran += 1

    started = time.perf_counter()
    # batch_size=1 with the cap: a finished job's status is flushed at once, so the next one may start
    # (with the default of 10 the capped worker waits for its buffer's timer between jobs).
    await manager.run(mode=QueueExecutionMode.drain, batch_size=1 if test == "drain_cap1" else 10)
    elapsed = time.perf_counter() - started
    await connection.close()
    if ran != n:
        raise RuntimeError(f"pgqueuer ran {ran} of {n}")
    if test == "drain_cap1":
        result["note"] = (
            "cap: entrypoint concurrency_limit=1 (enforced in the dequeue query), run with batch_size=1; "
            "with the default batch_size=10 the capped worker waits for its status buffer's timer between "
            "jobs (about 9 jobs/s when this harness was written)"
        )
    return {**result, "value": n / elapsed}
