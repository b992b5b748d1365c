"""The broker redelivers; a running job is still never started twice (issue 17, the relay's part).

A private RabbitMQ node with consumer_timeout 2 s (checked every 0.25 s) holds each job far
longer than that. An agent that acknowledged only after its work would have its channel closed
and its job started on another agent while it still ran; the sample agent acknowledges before it
starts, so the lease in pqueue holds the job, not the broker. Each test reads the agents'
--record lines: who started which claim when, and how many runs of one job were going at once.
"""

from __future__ import annotations

import os
import signal
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import pqueue
from pqueue import NewJob, PersistentQ, Status
from relay.topology import Routing
from tests.programs import Process, StartProgram
from tests.relay.private_rabbit import PrivateRabbit, server_script
from tests.relay.rabbit import Forwarder, Rabbit, rabbit_url
from tests.relay.records import AgentRun, agent_runs, most_at_once, read_records, starts_per_job
from tests.support import IN_CI, free_port, wait_until

pytestmark = [pytest.mark.rabbitmq, pytest.mark.process, pytest.mark.timeout(150)]

CONSUMER_TIMEOUT_MS = 2000
WORK_SECONDS = 6.0  # three consumer timeouts: a late ack would be redelivered while it works


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateRabbit]:
    """A RabbitMQ node of this module's own with a short consumer_timeout."""
    script = server_script()
    if script is None:
        if IN_CI:
            pytest.fail("no rabbitmq-server on this machine: the relay's fault tests must run in CI")
        pytest.skip("no rabbitmq-server on this machine")
    node = PrivateRabbit(tmp_path_factory.mktemp("rabbit"), consumer_timeout_ms=CONSUMER_TIMEOUT_MS)
    try:
        node.start(script)
        yield node
    finally:
        node.stop()


@pytest.fixture
def routing(broker: PrivateRabbit) -> Iterator[Routing]:
    yield Routing("t" + uuid.uuid4().hex[:12])


@pytest.fixture
def rabbit(broker: PrivateRabbit, routing: Routing) -> Iterator[Rabbit]:
    handle = Rabbit(routing, broker.url)
    yield handle
    handle.delete_queues()
    handle.close()


@pytest.fixture
def store(db_env: dict[str, str], routing: Routing) -> Iterator[PersistentQ]:
    settings = pqueue.load_settings(
        home=Path(db_env["PQ_HOME"]), database_url=db_env["PQ_DATABASE_URL"], db_schema=db_env.get("PQ_DB_SCHEMA")
    )
    opened = pqueue.connect(settings=settings, migrate=True)
    yield opened
    opened.close()


@pytest.fixture
def records(tmp_path: Path) -> Path:
    """Where the agents write their --record lines (one file per agent)."""
    directory = tmp_path / "records"
    directory.mkdir()
    return directory


@pytest.fixture
def relay(start_program: StartProgram, broker: PrivateRabbit, routing: Routing) -> Callable[..., None]:
    """Start pq-relay on the test's database and queue, talking to the private broker."""

    def launch(**overrides: str) -> None:
        settings = {"PQ_RELAY_QUEUE": routing.queue, "PQ_AMQP_URL": broker.url, "PQ_RELAY_LEASE_SECONDS": "30"}
        start_program("pq-relay", **{**settings, **overrides})

    return launch


@pytest.fixture
def agent(
    start_program: StartProgram, broker: PrivateRabbit, routing: Routing, records: Path
) -> Callable[..., Process]:
    """Start an agent: agent("a1", "--work-seconds", "6"), or another agent module with module=."""

    def launch(name: str, *args: str, module: str = "relay.agent", url: str | None = None) -> Process:
        command = ["-m", module, "--name", name, "--record", str(records / f"{name}.jsonl")]
        command += ["--queue", routing.queue, "--amqp-url", url or broker.url, *args]
        return start_program(Path(sys.executable).name, *command)

    return launch


def runs(records: Path) -> list[AgentRun]:
    return agent_runs(read_records(records))


def assert_one_run_at_a_time(found: list[AgentRun]) -> None:
    peaks = most_at_once(found, time.time())
    assert all(peak == 1 for peak in peaks.values()), f"runs of one job at once: {peaks}; runs: {found}"


def server_log(broker: PrivateRabbit) -> str:
    return "".join(path.read_text(errors="replace") for path in (broker.directory / "log").glob("*.log"))


def all_processed(store: PersistentQ, ids: list[int]) -> bool:
    return all(store.get_job(job_id).status == Status.PROCESSED for job_id in ids)


@pytest.mark.parametrize("backend", ["sqlite"])
def test_an_agent_that_acks_after_its_work__has_its_running_job_started_again_elsewhere(
    store: PersistentQ,
    relay: Callable[..., None],
    agent: Callable[..., Process],
    routing: Routing,
    rabbit: Rabbit,
    broker: PrivateRabbit,
    records: Path,
) -> None:
    """The bug, reproduced: what the sample agent's protocol prevents (and proof the broker's
    consumer timeout really fires in this suite)."""
    for name in ("late1", "late2"):
        agent(name, "--work-seconds", "60", module="tests.relay.late_ack_agent")
    wait_until(lambda: rabbit.consumers(routing.outbox_queue) == 2, what="both agents consuming")
    job_id = store.put_item({"n": 1}, queue=routing.queue)
    relay()

    def two_at_once() -> bool:
        return most_at_once(runs(records), time.time()).get(job_id, 0) >= 2

    wait_until(two_at_once, timeout=60, what="the broker to hand the running job to the second agent")
    found = runs(records)
    assert {run.lease_id for run in found} == {1}, "the same claim, so fencing cannot tell the two runs apart"
    wait_until(
        lambda: "delivery acknowledgement on channel 1 timed out" in server_log(broker),
        what="the broker's log to name the consumer timeout",
    )


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_jobs_held_past_the_consumer_timeout__each_started_once_by_one_agent_and_all_processed(
    store: PersistentQ,
    relay: Callable[..., None],
    agent: Callable[..., Process],
    routing: Routing,
    rabbit: Rabbit,
    records: Path,
) -> None:
    for name in ("a1", "a2", "a3"):  # one more than the jobs: an idle agent would take any redelivery
        agent(name, "--work-seconds", str(WORK_SECONDS))
    wait_until(lambda: rabbit.consumers(routing.outbox_queue) == 3, what="the agents consuming")
    ids = [put.id for put in store.put_items([NewJob({"n": n}, queue=routing.queue) for n in range(2)])]
    relay()

    wait_until(lambda: all_processed(store, ids), timeout=90, what="both jobs processed")
    found = runs(records)
    assert starts_per_job(found) == {job_id: 1 for job_id in ids}, found
    assert_one_run_at_a_time(found)
    assert all(run.end is not None and run.end - run.start >= WORK_SECONDS for run in found), found
    assert all((store.get_job(job_id).attempts, store.get_job(job_id).lease_id) == (1, 1) for job_id in ids)
    assert rabbit.depth(routing.outbox_queue) == 0


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_agents_cut_off_mid_job__work_on_reconnect_and_report_and_no_job_starts_twice(
    store: PersistentQ,
    relay: Callable[..., None],
    agent: Callable[..., Process],
    routing: Routing,
    rabbit: Rabbit,
    broker: PrivateRabbit,
    records: Path,
) -> None:
    gate = Forwarder(free_port(), upstream_port=broker.port)
    gate.open()
    try:
        for name in ("a1", "a2", "a3"):
            agent(name, "--work-seconds", str(WORK_SECONDS), url=rabbit_url(gate.port))
        wait_until(lambda: rabbit.consumers(routing.outbox_queue) == 3, what="the agents consuming")
        ids = [put.id for put in store.put_items([NewJob({"n": n}, queue=routing.queue) for n in range(2)])]
        relay()
        wait_until(lambda: len(runs(records)) == 2, what="both jobs started")
        gate.cut()  # every agent's connection drops while two of them work

        wait_until(lambda: all_processed(store, ids), timeout=90, what="both jobs processed")
    finally:
        gate.close()
    found = runs(records)
    assert starts_per_job(found) == {job_id: 1 for job_id in ids}, found
    assert_one_run_at_a_time(found)
    assert all(store.get_job(job_id).attempts == 1 for job_id in ids)
    assert gate.accepted > 3, "the agents did not reconnect after the cut"


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_sample_agent_sigterm_mid_job__exits_at_once_and_the_job_finishes_on_another_agent(
    store: PersistentQ,
    relay: Callable[..., None],
    agent: Callable[..., Process],
    routing: Routing,
    rabbit: Rabbit,
    records: Path,
) -> None:
    long_work = 60.0
    first = agent("a1", "--work-seconds", str(long_work))
    wait_until(lambda: rabbit.consumers(routing.outbox_queue) == 1, what="a1 consuming")
    job_id = store.put_item({"n": 1}, queue=routing.queue)
    relay()
    wait_until(lambda: runs(records), what="a1 started the job")
    agent("a2", "--work-seconds", "1")
    wait_until(lambda: rabbit.consumers(routing.outbox_queue) == 1, what="a2 consuming (a1 is busy)")

    sent = time.monotonic()
    os.kill(first.pid, signal.SIGTERM)
    first.wait(long_work / 2)  # far sooner than its work would end (the old agent needed SIGKILL)
    exit_ms = (time.monotonic() - sent) * 1000
    print(f"SIGTERM to exit of the sample agent mid-job: {exit_ms:.0f} ms")
    assert first.returncode == 0

    wait_until(lambda: store.get_job(job_id).status == Status.PROCESSED, timeout=60, what="job processed by a2")
    job = store.get_job(job_id)
    assert job.attempts == 1, "giving the job back spent an attempt"
    assert job.result["agent"] == "a2"
    found = runs(records)
    assert [(run.agent, run.lease_id, run.outcome) for run in found] == [("a1", 1, "released"), ("a2", 2, "success")]
    assert_one_run_at_a_time(found)
    events = [(e.from_status, e.to_status) for e in store.events(job_id)]
    assert (Status.UNDER_PROCESS, Status.UNPROCESSED) in events
