"""`make run` as a newcomer runs it: in a terminal, stopped with Ctrl-C, started twice, with a
port taken, with a setting the stored policy overrules, and stopped during a long job."""

from __future__ import annotations

import socket
import time

import httpx
import psutil
import pytest

from pqueue import Status
from tests.newcomer.machine import Newcomer, gone, port_free
from tests.support import wait_until

pytestmark = [pytest.mark.process, pytest.mark.e2e, pytest.mark.timeout(300)]

BANNER = r"pqueue is running \(Ctrl-C stops it"
GRACE = 30  # PQ_SHUTDOWN_GRACE, the consumer's default


def test_ctrl_c_through_tee__stops_every_program_and_frees_the_ports(newcomer: Newcomer) -> None:
    screen = newcomer.terminal(f"make run 2>&1 | tee {newcomer.home}/run.log")
    screen.expect(BANNER)
    started = newcomer.processes()
    assert len(started) >= 4, "supervisord, producer, consumer and dashboard"

    screen.ctrl_c()  # reaches make, pq-run and tee: tee dies at once and closes pq-run's stdout

    screen.wait(timeout=GRACE + 60)
    wait_until(lambda: gone(started), timeout=10, what="every program to be gone")
    assert port_free(newcomer.port) and port_free(newcomer.dashboard_port)
    log = (newcomer.home / "var" / "log" / "supervisord.log").read_text()
    for program in ("producer", "consumer", "ops_dashboard"):
        assert f"INFO stopped: {program} (exit status 0)" in log, "stopped cleanly, not terminated by a signal"
    assert "WARN stopped" not in log


def test_taken_port__the_cause_is_on_the_terminal_within_10_seconds_and_nothing_starts(
    newcomer: Newcomer,
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", newcomer.port))
        taken.listen()
        began = time.monotonic()
        screen = newcomer.terminal("make run")
        screen.expect(rf"port {newcomer.port} \(PQ_PRODUCER_PORT\) is already in use by pid \d+", timeout=10)
        assert time.monotonic() - began < 10
        assert screen.wait(timeout=30) != 0
    assert "pqueue is running" not in screen.text, "no banner for a system that cannot answer"
    assert newcomer.supervisord() is None


def test_second_make_run__says_pqueue_is_already_running_and_leaves_the_first_alone(newcomer: Newcomer) -> None:
    first = newcomer.terminal("make run")
    first.expect(BANNER)
    supervisord = newcomer.supervisord()
    assert supervisord is not None

    second = newcomer.terminal("make run")
    found = second.expect(r"pqueue is already running here \(pid (\d+), in ", timeout=60)

    assert second.wait(timeout=30) != 0
    assert found.group(1) == (newcomer.home / "var" / "run" / "pq-run.pid").read_text().strip()
    assert httpx.get(f"http://127.0.0.1:{newcomer.port}/healthz", timeout=10).status_code == 200
    assert newcomer.supervisord() == supervisord, "the first system runs on, untouched"
    first.ctrl_c()
    first.wait(timeout=GRACE + 60)


def test_changed_job_timeout__the_terminal_says_it_is_not_applied_and_the_command_that_applies_it(
    newcomer: Newcomer,
) -> None:
    store = newcomer.store()
    try:
        store.adopt_queue()  # what the first start's consumer did: the queue's policy is stored
    finally:
        store.close()

    screen = newcomer.terminal("make run", PQ_JOB_TIMEOUT="5")

    screen.expect(r"queue default: 1 seat, 3 attempts, 1h job timeout \(a timed-out job is not retried\), 30s lease")
    screen.expect(
        r"not applied: PQ_JOB_TIMEOUT=5 is overruled by queue 'default''s stored job_timeout 3600 "
        r"\(`pq queue set default --timeout 5` changes it for every host\)"
    )
    screen.ctrl_c()
    screen.wait(timeout=GRACE + 60)


def test_ctrl_c_twice_during_a_long_job__stops_at_once_and_gives_the_job_back(newcomer: Newcomer) -> None:
    screen = newcomer.terminal("make run", PQ_SHUTDOWN_GRACE="600")
    screen.expect(BANNER)
    response = httpx.post(f"http://127.0.0.1:{newcomer.port}/jobs", json={"payload": {"seconds": 600}}, timeout=30)
    job_id = response.json()["id"]
    store = newcomer.store()
    try:
        wait_until(lambda: store.get_job(job_id).status == Status.UNDER_PROCESS, what="the job to run")

        screen.ctrl_c()
        screen.expect(
            rf"the consumer lets job {job_id} \(running for \S+\) finish, for up to 10m \(PQ_SHUTDOWN_GRACE\)"
        )
        screen.expect(r"Ctrl-C again to stop it now")
        assert store.get_job(job_id).status == Status.UNDER_PROCESS, "the first Ctrl-C lets it run"
        screen.ctrl_c()
        screen.expect(rf"stopping now: the consumer kills job {job_id} and puts it back in the queue")

        screen.wait(timeout=120)
        job = store.get_job(job_id)
        assert (job.status, job.attempts) == (Status.UNPROCESSED, 0), "released by the consumer, attempt not spent"
        assert "stopped at once by a second stop signal" in (store.events(job_id)[-1].message or "")
    finally:
        store.close()
    assert "pqueue stopped" in screen.text


@pytest.mark.timeout(600)
def test_kill_the_consumer_mid_job__its_algorithm_dies_with_it_and_the_job_is_rescued_and_run_again(
    newcomer: Newcomer,
) -> None:
    """The README tour's `kill -9 $(supervisorctl pid consumer)` during the sleep algorithm's job."""
    screen = newcomer.terminal("make run", PQ_LEASE_SECONDS="10")  # the tour's 30 s lease, shortened
    screen.expect(BANNER)
    response = httpx.post(f"http://127.0.0.1:{newcomer.port}/jobs", json={"payload": {"seconds": 30}}, timeout=30)
    job_id = response.json()["id"]
    store = newcomer.store()
    try:
        wait_until(lambda: store.get_job(job_id).status == Status.UNDER_PROCESS, timeout=120, what="the job to run")
        consumer = psutil.Process(newcomer.supervisorctl_pid("consumer"))
        algorithm = consumer.children(recursive=True)  # the helper and the run it forked
        assert algorithm, "the algorithm runs in a child of the consumer"

        consumer.kill()  # kill -9 $(supervisorctl -c supervisord.conf pid consumer)

        wait_until(lambda: gone([consumer, *algorithm]), timeout=60, what="the algorithm to die with its consumer")
        screen.expect(r"consumer was killed by SIGKILL; Supervisor starts it again", timeout=30)
        wait_until(
            lambda: newcomer.supervisorctl_pid("consumer") not in (0, consumer.pid),
            timeout=60,
            interval=1,
            what="Supervisor to start a new consumer",
        )
        wait_until(
            lambda: store.get_job(job_id).status == Status.PROCESSED,
            timeout=240,
            interval=0.5,
            what="the job rescued when its lease ran out, run again and finished",
        )
        job = store.get_job(job_id)
        moves = [(e.from_status, e.to_status, e.message or "") for e in store.events(job_id)]
    finally:
        store.close()
    assert job.attempts == 2
    claims = [message for _, to, message in moves if to == "under_process"]
    assert [claim.split(",")[0] for claim in claims] == ["attempt 1 of 3", "attempt 2 of 3"]
    rescued = [message for before, after, message in moves if (before, after) == ("under_process", "crashed")]
    assert len(rescued) == 1 and rescued[0].startswith("lease 1 of worker") and rescued[0].endswith("expired")
    assert moves[-1][:2] == ("under_process", "processed")
    screen.ctrl_c()
    screen.wait(timeout=GRACE + 60)


def test_pq_in_a_terminal__names_the_database_it_opened(newcomer: Newcomer) -> None:
    newcomer.store().close()  # the database exists (pq never creates one)
    screen = newcomer.terminal("pq list")
    screen.expect(rf"database: {newcomer.home}/var/pqueue.db")
    assert screen.wait(timeout=60) == 0
