"""What only PostgreSQL has to prove: seat races across processes, the claim plan, NOTIFY
wake-ups, and a server restart in the middle of work."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest

import pqueue
from pqueue import LeaseLost, PersistentQ, Settings, Status
from pqueue.database import PING_IF_IDLE_SECONDS
from pqueue.sql.claim import PostgresClaim
from tests.db import workers
from tests.db.workers import PROCESSES, drain, overrides_of
from tests.pg_cluster import PrivateCluster
from tests.postgres import require_postgres
from tests.support import RACES


@pytest.fixture(params=[pytest.param("postgresql", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    """Every test here is about PostgreSQL."""
    return str(request.param)


@pytest.fixture
def pg(make_queue: Callable[..., PersistentQ]) -> PersistentQ:
    return make_queue(synchronous_commit=False)


@pytest.mark.process
@RACES
@pytest.mark.timeout(300)
def test_seat_race__eight_processes_one_seat_exactly_one_wins(pg: PersistentQ) -> None:
    rounds, racers = 50, 8
    out, barrier = PROCESSES.Queue(), PROCESSES.Barrier(racers + 1)
    overrides = overrides_of(pg.settings, synchronous_commit=False)
    processes = [
        PROCESSES.Process(target=workers.claim_rounds, args=(overrides, rounds, barrier, out)) for _ in range(racers)
    ]
    for process in processes:
        process.start()
    try:
        for round_number in range(rounds):
            for n in range(3):
                pg.put_item({"round": round_number, "n": n})
            barrier.wait(60)
            results = drain(out, lambda m: len(m) >= racers, timeout=60)
            assert [r for r in results if r[0] == "error"] == []
            winners = [r[1] for r in results if r[1] is not None]
            assert len(winners) == 1, f"round {round_number}: {len(winners)} claims with one seat"
            job_id, lease_id = winners[0]
            pg.update_status(job_id, "processed", lease_id=lease_id)
    finally:
        for process in processes:
            process.join(10)
            if process.is_alive():
                process.kill()


@pytest.fixture
def roomy_pg(make_queue: Callable[..., PersistentQ]) -> PersistentQ:
    """A queue whose calls may take minutes: loading a long backlog in one statement outlasts
    the usual few-second deadline on a slow machine."""
    return make_queue(synchronous_commit=False, db_statement_timeout=300, db_network_timeout=300)


def _pile_up(pg: PersistentQ, status: str, count: int) -> None:
    """Store `count` jobs in `status` straight through SQL, and refresh the planner's statistics."""
    with pg.engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO pq_jobs (queue, payload, payload_hash, status, max_attempts, created_at, run_after)"
            f" SELECT 'default', '{{}}', '', '{status}', 3, now(), now() FROM generate_series(1, {count})"
        )
        conn.exec_driver_sql("ANALYZE pq_jobs")


def test_claim_plan__uses_partial_index_with_finished_jobs_piled_up(roomy_pg: PersistentQ) -> None:
    pg = roomy_pg
    _pile_up(pg, "processed", 50_000)
    pg.put_item("waiting")
    query = pg.candidate_query("default").compile(dialect=pg.engine.dialect, compile_kwargs={"literal_binds": True})
    with pg.engine.begin() as conn:
        plan = "\n".join(row[0] for row in conn.exec_driver_sql(f"EXPLAIN {query}"))
    assert "ix_pq_jobs_claim" in plan, plan
    assert "Seq Scan on pq_jobs" not in plan, plan


def test_claim_plan__walks_the_index_to_the_first_job_of_a_long_backlog(roomy_pg: PersistentQ) -> None:
    pg = roomy_pg
    _pile_up(pg, "unprocessed", 200_000)
    assert isinstance(pg._sql.claim, PostgresClaim)
    claim = pg._sql.claim.statement().params(w_queue="default", w_worker="w", w_lease_seconds=30.0)
    query = claim.compile(dialect=pg.engine.dialect, compile_kwargs={"literal_binds": True})
    with pg.engine.begin() as conn:
        plan = "\n".join(row[0] for row in conn.exec_driver_sql(f"EXPLAIN {query}"))
    # Planned for one row: a walk down the claim index per partner and one row updated by its key.
    # A plan for many rows joins the whole table (135 ms per claim with a million jobs stored).
    # The only sorts are of the partners' tags and of the running jobs, never of the backlog.
    assert re.search(r"Index (Only )?Scan using ix_pq_jobs_claim", plan), plan
    # The one join allowed: the holds with the running jobs they wait behind (a handful of rows
    # each), for the claim's check that a job is not held (pqueue/sql/holds.py).
    holds_joined = plan.count("Hash Cond: ((pq_holds.behind_job = behind.id)")
    assert "Merge Join" not in plan and plan.count("Hash Join") == holds_joined <= 1, plan
    sorted_by = re.findall(r"Sort Key: (.*)", plan)
    assert all(key in ("tags.tag, tags.head", "pq_jobs_1.partner") for key in sorted_by), plan


@pytest.fixture
def private_cluster() -> Iterator[PrivateCluster]:
    require_postgres()
    cluster = PrivateCluster()
    cluster.start()
    yield cluster
    cluster.destroy()


def _private_settings(cluster: PrivateCluster, **extra: Any) -> Settings:
    return pqueue.load_settings(database_url=cluster.url, db_schema="restart", **extra)


@pytest.mark.process
@pytest.mark.postgres
@pytest.mark.timeout(240)
def test_server_restart__nothing_lost_and_work_resumes(private_cluster: PrivateCluster) -> None:
    store = pqueue.connect(settings=_private_settings(private_cluster), migrate=True)
    # A job claimed or finished just as the server stops holds the one seat until its lease ends.
    overrides = {
        "database_url": private_cluster.url,
        "db_schema": "restart",
        "lease_seconds": 4,
        "retry_backoff_seconds": 0,
    }
    out, stop = PROCESSES.Queue(), PROCESSES.Event()
    consumer = PROCESSES.Process(target=workers.resilient_consumer, args=(overrides, stop, out))
    consumer.start()
    acked: list[int] = []
    try:
        drain(out, lambda m: any(x[0] == "connected" for x in m), timeout=60)
        for n in range(60):
            if n == 20:
                private_cluster.restart()
            acked.append(_put_until_stored(store, n))
        done = drain(out, lambda m: {x[1] for x in m if x[0] == "done"} >= set(acked), timeout=120)
    finally:
        stop.set()
        consumer.join(15)
        if consumer.is_alive():
            consumer.kill()
    assert {x[1] for x in done if x[0] == "done"} == set(acked)
    assert store.count_items(status="processed") == 60
    store.close()


def _put_until_stored(store: PersistentQ, n: int) -> int:
    """Submit like a careful partner: on an outage, retry with the same idempotency key."""
    deadline = time.monotonic() + 60
    while True:
        try:
            return store.put_item({"n": n}, idempotency_key=f"job-{n}")
        except pqueue.DatabaseError:
            assert time.monotonic() < deadline, "the database never came back"
            time.sleep(0.2)


@pytest.mark.postgres
@pytest.mark.timeout(120)
def test_server_restart__stale_worker_is_still_fenced(private_cluster: PrivateCluster) -> None:
    store = pqueue.connect(settings=_private_settings(private_cluster, lease_seconds=5), migrate=True)
    job_id = store.put_item("x")
    stale = store.get_item("before-restart")
    assert stale is not None
    private_cluster.restart()
    store.clock_offset = _minute()
    assert _retry(store.rescue_expired) == [(job_id, Status.CRASHED)]
    store.clock_offset += _minute() * 10
    fresh = _retry(lambda: store.get_item("after-restart"))
    assert fresh is not None and fresh.lease_id > stale.lease_id
    with pytest.raises(LeaseLost):
        store.update_status(job_id, "processed", lease_id=stale.lease_id, result="late")
    assert store.update_status(job_id, "processed", lease_id=fresh.lease_id, result="ok").result == "ok"
    store.close()


@pytest.mark.postgres
@pytest.mark.timeout(120)
def test_server_restart__idle_pooled_connections_are_replaced_unseen(private_cluster: PrivateCluster) -> None:
    store = pqueue.connect(settings=_private_settings(private_cluster), migrate=True)
    store.put_item("x")
    private_cluster.restart()
    time.sleep(PING_IF_IDLE_SECONDS)
    # No DatabaseBusy: the pooled connections died with the server, were pinged and replaced.
    assert store.count_items() == 1
    assert store.get_item("w") is not None
    store.close()


def _minute() -> timedelta:
    return timedelta(seconds=60)


def _retry(call: Callable[[], Any]) -> Any:
    deadline = time.monotonic() + 30
    while True:
        try:
            return call()
        except pqueue.DatabaseError:
            assert time.monotonic() < deadline
            time.sleep(0.2)
