"""The broker away or the connection cut: the relay retries, says so, and loses nothing."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial

import pytest

from pqueue import NewJob, PersistentQ, Status
from relay.topology import Routing
from tests.relay.rabbit import Forwarder, Rabbit, rabbit_url
from tests.relay.running import RelayPrograms, all_final, assert_no_overlapping_runs, counts
from tests.support import free_port, wait_until

pytestmark = [pytest.mark.rabbitmq, pytest.mark.process, pytest.mark.timeout(120)]


def processed_at_least(store: PersistentQ, queue: str, number: int) -> bool:
    return counts(store, queue).get(Status.PROCESSED.value, 0) >= number


def connected_times(programs: RelayPrograms, number: int) -> bool:
    return programs.log().count("connected to RabbitMQ") >= number


@pytest.fixture
def forwarder() -> Iterator[Forwarder]:
    """A port that reaches RabbitMQ once opened, and can cut its connections."""
    gate = Forwarder(free_port())
    yield gate
    gate.close()


def test_broker_unreachable__relay_retries_and_logs_why_while_jobs_are_still_put_then_feeds_once_it_is_back(
    store: PersistentQ,
    relay_env: Callable[..., dict[str, str]],
    routing: Routing,
    rabbit: Rabbit,
    programs: RelayPrograms,
    forwarder: Forwarder,
) -> None:
    env = relay_env()
    programs.agent(env, "a1", "--work-seconds", "0")
    relay = programs.relay(relay_env(PQ_AMQP_URL=rabbit_url(forwarder.port)))

    wait_until(lambda: programs.log().count("retrying in") >= 2, what="two logged retries")
    assert f"cannot reach RabbitMQ at amqp://guest@127.0.0.1:{forwarder.port}/%2F" in programs.log()
    assert "guest:guest" not in programs.log(), "the password leaked into the log"
    job_id = store.put_item({"n": 1}, queue=routing.queue)  # the database does not need the broker
    assert store.get_job(job_id).status == Status.UNPROCESSED
    assert relay.poll() is None

    forwarder.open()
    wait_until(lambda: store.get_job(job_id).status == Status.PROCESSED, timeout=60, what="job processed")
    assert "connected to RabbitMQ" in programs.log()


def test_connection_cut_mid_flow__relay_reconnects_and_every_job_is_processed_once_at_a_time(
    store: PersistentQ,
    relay_env: Callable[..., dict[str, str]],
    routing: Routing,
    rabbit: Rabbit,
    programs: RelayPrograms,
    forwarder: Forwarder,
) -> None:
    ids = [put.id for put in store.put_items([NewJob({"n": n}, queue=routing.queue) for n in range(40)])]
    env = relay_env(PQ_RELAY_WINDOW="5", PQ_RELAY_LEASE_SECONDS="5")
    programs.agent(env, "a1", "--work-seconds", "0.02")
    programs.agent(env, "a2", "--work-seconds", "0.02")
    wait_until(lambda: programs.agent_ready("a1") and programs.agent_ready("a2"), what="agents consuming")
    forwarder.open()
    programs.relay(relay_env(PQ_RELAY_WINDOW="5", PQ_RELAY_LEASE_SECONDS="5", PQ_AMQP_URL=rabbit_url(forwarder.port)))

    for processed, connects in ((10, 2), (25, 3)):
        wait_until(partial(processed_at_least, store, routing.queue, processed), what=f"{processed} processed")
        forwarder.cut()
        wait_until(partial(connected_times, programs, connects), what="reconnected")
    assert "connection lost to RabbitMQ" in programs.log()

    wait_until(lambda: all_final(store, routing.queue, len(ids)), timeout=60, what="all 40 jobs processed")
    assert all(store.get_job(job_id).status == Status.PROCESSED for job_id in ids)
    assert_no_overlapping_runs(programs.records())
    assert rabbit.depth(routing.dead_queue) == 0
