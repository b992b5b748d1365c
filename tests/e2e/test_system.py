"""The whole system under supervisord, breaking and healing: real processes, real HTTP, a real
partner receiving callbacks."""

from __future__ import annotations

import json
import os
import signal
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

import pqueue
from pqueue.callbacks import verify
from tests.callbacks.partner import Partner
from tests.consumer.algos import read_log
from tests.e2e.system import System
from tests.postgres import drop_schema, require_postgres
from tests.programs import pid_alive
from tests.support import wait_until

# One whole system at a time: each is five processes, and the machine may have two cores.
pytestmark = [pytest.mark.e2e, pytest.mark.process, pytest.mark.xdist_group("e2e")]


def max_overlap(log: list[dict[str, object]]) -> int:
    """The most algorithm runs in progress at one moment, from start/end events."""
    edges = sorted((float(e["t"]), 1 if e["event"] == "start" else -1) for e in log if e["event"] in ("start", "end"))  # type: ignore[arg-type]
    peak = current = 0
    for _, step in edges:
        current += step
        peak = max(peak, current)
    return peak


def statuses(system: System, ids: list[int]) -> dict[int, str]:
    return {job_id: system.job(job_id)["status"] for job_id in ids}


def all_processed(system: System, ids: list[int]) -> bool:
    return all(status == "processed" for status in statuses(system, ids).values())


@pytest.mark.timeout(600)
def test_two_hundred_jobs__processed_called_back_once_signed_never_overlapping(
    start_system: Callable[..., System], partner: Partner, tmp_path: Path
) -> None:
    system = start_system()
    log = tmp_path / "runs.jsonl"
    payloads = [{"do": "sleep", "seconds": 0, "log": str(log), "tag": n} for n in range(200)]
    with httpx.Client() as client, ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(lambda p: system.submit(client, p, callback_url=partner.url()), payloads))
    assert system.dashboard_answers(), "the dashboard answers while jobs run"
    wait_until(lambda: all_processed(system, ids), timeout=400, interval=1, what="all 200 jobs processed")
    wait_until(lambda: len(partner.requests()) >= 200, timeout=120, what="200 callbacks")
    received = partner.requests()
    bodies = [json.loads(r.body) for r in received]
    assert sorted(b["id"] for b in bodies) == sorted(ids), "every callback arrives exactly once"
    for request in received:
        headers = request.headers
        assert verify("e2e-secret", headers["x-pq-timestamp"], request.body, headers["x-pq-signature"])
    assert max_overlap(read_log(log)) == 1, "the licensed algorithm never ran two at once"
    assert system.dashboard_answers()


@pytest.mark.timeout(300)
def test_consumer_sigkilled_mid_job__restarted_rescued_and_finished(
    start_system: Callable[..., System], tmp_path: Path
) -> None:
    system = start_system()
    log = tmp_path / "runs.jsonl"
    marker = tmp_path / "first-run"
    with httpx.Client() as client:
        job_id = system.submit(client, {"do": "sleep_once", "seconds": 60, "marker": str(marker), "log": str(log)})
    wait_until(lambda: system.job(job_id)["status"] == "under_process" and marker.exists(), timeout=60)
    first_consumer = system.pid("consumer")
    algorithm_pid = int(marker.read_text())
    os.kill(first_consumer, signal.SIGKILL)
    wait_until(lambda: not pid_alive(algorithm_pid), timeout=30, what="the algorithm to die with its consumer")
    wait_until(lambda: system.pid("consumer") not in (0, first_consumer), timeout=60, what="supervisord to restart it")
    wait_until(lambda: system.job(job_id)["status"] == "processed", timeout=120, what="the rescued job to finish")
    job = system.job(job_id)
    assert job["attempts"] == 2 and job["result"]["second_run"] is True
    store = pqueue.connect(settings=pqueue.load_settings(home=system.home))
    try:
        moves: list[tuple[str | None, str]] = [(e.from_status, e.to_status) for e in store.events(job_id)]
    finally:
        store.close()
    assert moves.count(("under_process", "crashed")) == 1 and moves[-1] == ("under_process", "processed")


@pytest.mark.timeout(400)
def test_producer_sigkilled_mid_burst__every_acknowledged_job_processed(
    start_system: Callable[..., System],
) -> None:
    system = start_system()
    acknowledged: list[int] = []
    lock = threading.Lock()
    killed = threading.Event()

    def client_loop(worker: int) -> None:
        with httpx.Client() as client:
            for n in range(60):
                try:
                    response = client.post(
                        f"{system.url}/jobs", json={"payload": {"do": "ok", "n": n, "w": worker}}, timeout=10
                    )
                except httpx.HTTPError:
                    continue  # not acknowledged: the partner would retry
                if response.status_code == 202:
                    with lock:
                        acknowledged.append(response.json()["id"])
                        if len(acknowledged) == 100 and not killed.is_set():
                            killed.set()
                            os.kill(system.pid("producer"), signal.SIGKILL)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(client_loop, range(8)))
    assert killed.is_set()
    wait_until(system.healthy, timeout=60, what="supervisord to restart the producer")
    wait_until(lambda: all_processed(system, acknowledged), timeout=300, interval=1, what="acknowledged jobs processed")


@pytest.mark.timeout(300)
def test_supervisorctl_stop_consumer__job_finishes_or_returns_with_attempt_kept(
    start_system: Callable[..., System], tmp_path: Path
) -> None:
    system = start_system(PQ_SHUTDOWN_GRACE="1")
    log = tmp_path / "runs.jsonl"
    with httpx.Client() as client:
        job_id = system.submit(client, {"do": "sleep", "seconds": 30, "log": str(log)})
    wait_until(lambda: system.job(job_id)["status"] == "under_process", timeout=60)
    assert "stopped" in system.ctl("stop", "consumer").lower()
    job = system.job(job_id)
    assert (job["status"], job["attempts"]) == ("unprocessed", 0), "the grace ran out: released, attempt kept"
    assert "consumer                         STOPPED" in system.ctl("status", "consumer") or system.pid("consumer") == 0


@pytest.fixture
def shared_postgres() -> Iterator[dict[str, str]]:
    """PQ_* settings of one PostgreSQL schema that two systems share (dropped afterwards)."""
    url = require_postgres()
    schema = "e2e_" + os.urandom(6).hex()
    yield {"PQ_DATABASE_URL": url, "PQ_DB_SCHEMA": schema, "PQ_MAX_RUNNING": "1"}
    drop_schema(url, schema)


@pytest.mark.postgres
@pytest.mark.timeout(600)
def test_postgres_two_systems_one_seat__no_overlap_nothing_lost_nothing_twice(
    shared_postgres: dict[str, str], start_system: Callable[..., System], tmp_path: Path
) -> None:
    hosts = [start_system("host-a", **shared_postgres), start_system("host-b", **shared_postgres)]
    log = tmp_path / "runs.jsonl"
    with httpx.Client() as client:
        ids = [
            hosts[n % 2].submit(client, {"do": "sleep", "seconds": 0.05, "log": str(log), "tag": n}) for n in range(60)
        ]
    wait_until(lambda: all_processed(hosts[0], ids), timeout=400, interval=1, what="all jobs processed")
    runs = read_log(log)
    assert sorted(e["tag"] for e in runs if e["event"] == "start") == list(range(60)), "every job ran exactly once"
    assert max_overlap(runs) == 1, "one seat across both hosts"
    settings = pqueue.load_settings(
        database_url=shared_postgres["PQ_DATABASE_URL"], db_schema=shared_postgres["PQ_DB_SCHEMA"]
    )
    store = pqueue.connect(settings=settings)
    try:
        consumers = [w for w in store.workers() if w.kind == "consumer" and w.queue == "default"]
        assert len(consumers) == 2, "both hosts' consumers took part"
    finally:
        store.close()
