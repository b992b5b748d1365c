"""Killing, stalling, signalling and racing real consumers: the algorithm never outlives its lease."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import psutil
import pytest
from sqlalchemy import Connection, select
from sqlalchemy.exc import OperationalError

from pqueue import PersistentQ, Status
from pqueue.schema import jobs
from tests.consumer.algos import read_log
from tests.faults.blackhole import NetworkProxy
from tests.programs import CLAIM_AHEAD, StartConsumer, kill_hard, pid_alive, wait_exit, wait_gone
from tests.support import wait_status, wait_until

pytestmark = [pytest.mark.process, pytest.mark.timeout(120)]


def started(log: Path, count: int = 1) -> list[dict[str, object]]:
    """Wait until `count` runs have started; their start events."""

    def starts() -> list[dict[str, object]]:
        found = [e for e in read_log(log) if e["event"] == "start"]
        return found if len(found) >= count else []

    return wait_until(starts, what=f"{count} run(s) to start")


def helper_pid(consumer_log: Path) -> int:
    """The helper's pid, from the consumer's algorithm_ready line."""
    ready = next(line for line in consumer_log.read_text().splitlines() if "event=algorithm_ready" in line)
    return int(ready.split(" pid=")[1].split()[0])


def test_consumer_killed__algorithm_dies_and_next_consumer_finishes_the_job(
    make_queue: Callable[..., PersistentQ], start_consumer: StartConsumer, tmp_path: Path
) -> None:
    q = make_queue(lease_seconds=2)
    log = tmp_path / "runs.jsonl"
    payload = {"do": "sleep_once", "marker": str(tmp_path / "m"), "seconds": 60, "grandchild": True, "log": str(log)}
    job_id = q.put_item(payload)
    first = start_consumer()
    run = started(log)[0]
    first_worker = q.get_job(job_id).worker_id

    kill_hard(first)  # SIGKILL the consumer alone: no cleanup code of its own runs
    wait_gone(int(str(run["pid"])))
    wait_gone(int(str(run["grandchild"])))
    assert q.get_job(job_id).status == Status.UNDER_PROCESS  # nobody has noticed yet

    second = start_consumer()
    wait_status(q, job_id, Status.PROCESSED)
    job = q.get_job(job_id)
    assert job.result["second_run"] is True
    assert job.attempts == 2 and job.worker_id != first_worker
    moves = [(e.from_status, e.to_status) for e in q.events(job_id)]
    assert moves == [
        (None, Status.UNPROCESSED),
        (Status.UNPROCESSED, Status.UNDER_PROCESS),
        (Status.UNDER_PROCESS, Status.CRASHED),  # rescued: lease expired
        (Status.CRASHED, Status.UNDER_PROCESS),
        (Status.UNDER_PROCESS, Status.PROCESSED),
    ]
    assert "expired" in (q.events(job_id)[2].message or "")
    second.send_signal(signal.SIGTERM)
    assert wait_exit(second) == 0


def test_consumer_killed__helper_kills_the_job_the_spare_and_the_grandchild_then_exits(
    make_queue: Callable[..., PersistentQ], start_consumer: StartConsumer, tmp_path: Path
) -> None:
    q = make_queue()
    log = tmp_path / "runs.jsonl"
    q.put_item({"do": "hang_with_grandchild", "log": str(log)})
    consumer = start_consumer()
    run = started(log)[0]
    helper = psutil.Process(helper_pid(tmp_path / "consumer-0.log"))
    spares = 2 if CLAIM_AHEAD else 1  # a consumer claiming ahead keeps two
    children = wait_until(
        lambda: [child.pid for child in helper.children()] if len(helper.children()) == 1 + spares else []
    )
    assert int(str(run["pid"])) in children  # the others are spares, forked once the job started

    kill_hard(consumer)
    for pid in [*children, int(str(run["grandchild"])), helper.pid]:
        wait_gone(pid)


@contextlib.contextmanager
def write_locked(conn: Connection) -> Iterator[None]:
    """A transaction begun on `conn`, tried again while SQLite's write lock is another's for a
    moment (the consumer's own writes beside a running job: a renewal, claiming ahead)."""
    deadline = time.monotonic() + 10
    while True:
        try:
            transaction = conn.begin()
            break
        except OperationalError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.01)
    with transaction:
        yield


def test_lease_not_renewable__algorithm_is_killed_before_the_lease_runs_out(
    make_queue: Callable[..., PersistentQ], start_consumer: StartConsumer, tmp_path: Path
) -> None:
    q = make_queue(lease_seconds=3)
    log = tmp_path / "runs.jsonl"
    job_id = q.put_item({"do": "sleep_once", "marker": str(tmp_path / "m"), "seconds": 60, "log": str(log)})
    start_consumer(PQ_LEASE_SECONDS="3")
    pid = int(str(started(log)[0]["pid"]))

    # The database stops answering the consumer's renewals: a transaction holding the job's row
    # (SQLite: the whole database) write-locked, so every heartbeat blocks.
    with q.engine.connect() as conn:
        conn.execution_options(pq_begin="IMMEDIATE")
        with write_locked(conn):
            query = select(jobs.c.lease_expires_at).where(jobs.c.id == job_id).with_for_update()
            lease_ends = conn.execute(query).scalar_one().timestamp()
            wait_gone(pid, timeout=10)
            killed_by = time.time()
            last_tick = max(float(str(e["t"])) for e in read_log(log))
            assert last_tick < lease_ends, "the algorithm ran past the lease it could not renew"
            assert killed_by < lease_ends + 0.75, "the algorithm was still alive when rescue could begin"
    # The database answers again: the consumer records the failure and runs the job again.
    wait_status(q, job_id, Status.PROCESSED)
    crashed = [e for e in q.events(job_id) if e.to_status == Status.CRASHED]
    assert crashed and "LeaseNotRenewed" in (crashed[0].message or "")


def test_lease_lost__rescued_job_has_its_algorithm_killed_and_nothing_recorded(
    make_queue: Callable[..., PersistentQ], start_consumer: StartConsumer, tmp_path: Path
) -> None:
    q = make_queue(lease_seconds=2)
    log = tmp_path / "runs.jsonl"
    job_id = q.put_item({"do": "sleep_once", "marker": str(tmp_path / "m"), "seconds": 60, "log": str(log)})
    start_consumer()
    first = started(log)[0]

    # Another host whose clock says the lease is long over rescues the job.
    elsewhere = make_queue(lease_seconds=2, retry_backoff_seconds=0)
    elsewhere.clock_offset = timedelta(seconds=3)  # past lease (2s) + margin (0.5s)
    assert elsewhere.rescue_expired(actor="elsewhere") == [(job_id, Status.CRASHED)]

    wait_gone(int(str(first["pid"])), timeout=10)  # seen at the next heartbeat
    wait_status(q, job_id, Status.PROCESSED, timeout=60)  # retried once due on the real clock
    runs = started(log, 2)
    last_tick_of_first = max(float(str(e["t"])) for e in read_log(log) if e["pid"] == first["pid"])
    assert float(str(runs[1]["t"])) > last_tick_of_first
    actors = [(e.to_status, e.actor) for e in q.events(job_id)]
    assert (Status.CRASHED, "elsewhere") in actors
    assert sum(1 for status, _ in actors if status == Status.CRASHED) == 1  # the consumer recorded nothing


def test_cancel__running_job_is_stopped_and_ends_cancelled(
    make_queue: Callable[..., PersistentQ], start_consumer: StartConsumer, tmp_path: Path
) -> None:
    q = make_queue()
    log = tmp_path / "runs.jsonl"
    cancelled = q.put_item({"do": "sleep", "seconds": 60, "grandchild": True, "log": str(log), "tag": "c"})
    failed = q.put_item({"do": "sleep", "seconds": 60, "log": str(log), "tag": "f"})
    start_consumer()
    run = started(log)[0]

    q.cancel(cancelled, reason="not needed any more")
    wait_status(q, cancelled, Status.CANCELLED)
    wait_gone(int(str(run["pid"])))
    wait_gone(int(str(run["grandchild"])))
    assert q.get_job(cancelled).operator_reason == "not needed any more"

    second = started(log, 2)[1]
    q.fail(failed, "wrong input, see ticket 12")
    wait_status(q, failed, Status.MANUAL_INTERVENTION)
    wait_gone(int(str(second["pid"])))
    assert q.get_job(failed).operator_reason == "wrong input, see ticket 12"


def test_two_consumers_one_seat__algorithm_runs_never_overlap(
    make_queue: Callable[..., PersistentQ], start_consumer: StartConsumer, tmp_path: Path
) -> None:
    q = make_queue()
    log = tmp_path / "runs.jsonl"
    ids = [q.put_item({"do": "sleep", "seconds": 0.2, "log": str(log), "tag": n}) for n in range(8)]
    start_consumer()
    start_consumer()
    for job_id in ids:
        wait_status(q, job_id, Status.PROCESSED, timeout=60)
    spans = []
    for tag in range(8):
        events = [e for e in read_log(log) if e["tag"] == tag]
        spans.append((min(float(str(e["t"])) for e in events), max(float(str(e["t"])) for e in events)))
    spans.sort()
    for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
        assert start > end, f"two runs overlapped: {spans}"
    assert len({q.get_job(i).worker_id for i in ids}) >= 1


@pytest.mark.parametrize("backend", ["sqlite"])
def test_sigterm__running_job_finishes_within_the_grace(
    make_queue: Callable[..., PersistentQ], start_consumer: StartConsumer, tmp_path: Path
) -> None:
    q = make_queue()
    log = tmp_path / "runs.jsonl"
    job_id = q.put_item({"do": "sleep", "seconds": 1.5, "log": str(log)})
    waiting = q.put_item({"do": "ok"})
    consumer = start_consumer(PQ_SHUTDOWN_GRACE="30")
    started(log)
    os.killpg(consumer.pid, signal.SIGTERM)  # to the whole group, as Supervisor's stopasgroup does
    assert wait_exit(consumer) == 0
    assert q.get_job(job_id).status == Status.PROCESSED
    assert q.get_job(waiting).status == Status.UNPROCESSED  # no new claim after the signal
    assert q.workers() == []


@pytest.mark.parametrize("backend", ["sqlite"])
def test_sigterm__grace_over_gives_the_job_back_without_spending_an_attempt(
    make_queue: Callable[..., PersistentQ], start_consumer: StartConsumer, tmp_path: Path
) -> None:
    q = make_queue()
    log = tmp_path / "runs.jsonl"
    job_id = q.put_item({"do": "sleep", "seconds": 60, "grandchild": True, "log": str(log)})
    consumer = start_consumer(PQ_SHUTDOWN_GRACE="0.5")
    run = started(log)[0]
    consumer.send_signal(signal.SIGTERM)
    assert wait_exit(consumer) == 0
    assert not pid_alive(int(str(run["pid"])))
    wait_gone(int(str(run["grandchild"])))
    job = q.get_job(job_id)
    assert job.status == Status.UNPROCESSED and job.attempts == 0
    assert q.events(job_id)[-1].to_status == Status.UNPROCESSED


@pytest.mark.parametrize("backend", ["sqlite"])
def test_second_signal__stops_at_once_and_gives_the_job_back(
    make_queue: Callable[..., PersistentQ], start_consumer: StartConsumer, tmp_path: Path
) -> None:
    q = make_queue()
    log = tmp_path / "runs.jsonl"
    job_id = q.put_item({"do": "sleep", "seconds": 60, "log": str(log)})
    consumer = start_consumer(PQ_SHUTDOWN_GRACE="60")
    run = started(log)[0]
    consumer.send_signal(signal.SIGTERM)
    wait_until(lambda: "event=shutdown_requested" in (tmp_path / "consumer-0.log").read_text())
    consumer.send_signal(signal.SIGINT)
    assert wait_exit(consumer, timeout=10) == 0
    assert not pid_alive(int(str(run["pid"])))
    job = q.get_job(job_id)
    assert (job.status, job.attempts) == (Status.UNPROCESSED, 0), "killed, then released: attempt not spent"


@pytest.mark.parametrize("backend", ["sqlite"])
def test_helper_killed__running_job_fails_and_a_new_helper_runs_the_next(
    make_queue: Callable[..., PersistentQ], start_consumer: StartConsumer, tmp_path: Path
) -> None:
    q = make_queue()
    log = tmp_path / "runs.jsonl"
    running = q.put_item({"do": "sleep", "seconds": 60, "log": str(log)}, max_attempts=1)
    start_consumer()
    run = started(log)[0]
    consumer_log = tmp_path / "consumer-0.log"

    os.kill(helper_pid(consumer_log), signal.SIGKILL)
    wait_gone(int(str(run["pid"])))  # its parent-death signal
    wait_status(q, running, Status.MANUAL_INTERVENTION)
    assert "the helper process that forked it died" in (q.get_job(running).error or "")
    after = q.put_item({"do": "ok"})
    wait_status(q, after, Status.PROCESSED)
    assert "event=algorithm_process_restart" in consumer_log.read_text()


@pytest.mark.parametrize("backend", [pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_network_to_postgresql_cut__algorithm_dies_before_the_lease_and_the_next_owner(
    make_queue: Callable[..., PersistentQ],
    start_consumer: StartConsumer,
    db_env: dict[str, str],
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    proxy = NetworkProxy.to_url(db_env["PQ_DATABASE_URL"])
    request.addfinalizer(proxy.close)
    through_proxy = proxy.url_through(db_env["PQ_DATABASE_URL"])
    q = make_queue(lease_seconds=3, retry_backoff_seconds=0)
    log = tmp_path / "runs.jsonl"
    job_id = q.put_item({"do": "sleep_once", "marker": str(tmp_path / "m"), "seconds": 60, "log": str(log)})
    start_consumer(PQ_DATABASE_URL=through_proxy, PQ_LEASE_SECONDS="3")
    pid = int(str(started(log)[0]["pid"]))

    proxy.cut()
    wait_gone(pid, timeout=10)
    lease_ends = q.get_job(job_id).lease_expires_at  # final: no renewal can arrive any more
    assert lease_ends is not None
    last_tick = max(float(str(e["t"])) for e in read_log(log))
    assert last_tick < lease_ends.timestamp(), "the algorithm ran past the lease it could not renew"
    # The next owner: rescue succeeds only after the lease plus the margin (on the database's clock).
    wait_until(lambda: q.rescue_expired(actor="next-owner"), timeout=15, what="the lease to expire")
    assert q.now().timestamp() > last_tick

    proxy.heal()  # the network is back: the consumer claims the job again and finishes it
    wait_status(q, job_id, Status.PROCESSED, timeout=60)
    actors = [(e.to_status, e.actor) for e in q.events(job_id)]
    assert (Status.CRASHED, "next-owner") in actors
    assert sum(1 for status, _ in actors if status == Status.CRASHED) == 1  # the stale consumer recorded nothing
