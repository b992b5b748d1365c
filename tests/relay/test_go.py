"""--wait-for-go: a queue's first start holds it paused until an operator says go."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from pqueue import NewJob, PersistentQ, Status
from relay.topology import Routing
from tests.programs import stop_program
from tests.relay.rabbit import Rabbit
from tests.relay.running import RelayPrograms, all_final
from tests.support import wait_until

pytestmark = [pytest.mark.rabbitmq, pytest.mark.process, pytest.mark.timeout(120)]


def test_wait_for_go__nothing_sent_until_resumed_then_sent_in_line_order_and_a_restart_does_not_pause_again(
    store: PersistentQ,
    relay_env: Callable[..., dict[str, str]],
    routing: Routing,
    rabbit: Rabbit,
    programs: RelayPrograms,
) -> None:
    priorities = [5, 0, 5, -1, 0]
    ids = [put.id for put in store.put_items([NewJob({"p": p}, queue=routing.queue, priority=p) for p in priorities])]
    env = relay_env()
    programs.agent(env, "a1", "--work-seconds", "0")
    relay = programs.relay(env, "--wait-for-go")

    wait_until(lambda: "connected to RabbitMQ" in programs.log(), what="relay connected")
    wait_until(lambda: any(w.kind == "relay" for w in store.workers()), what="relay registered")
    info = store.queue_settings(routing.queue)
    assert info is not None and info.paused and info.seats == 50
    assert "paused, waiting for a go" in programs.log()
    assert all(store.get_job(job_id).status == Status.UNPROCESSED for job_id in ids)
    line = [job.id for job in store.next_items(queue=routing.queue, limit=10)]  # what GET /next shows
    assert line == [ids[3], ids[1], ids[4], ids[0], ids[2]]

    store.resume(routing.queue)  # what `pq relay go` and POST /relay/go do
    wait_until(lambda: all_final(store, routing.queue, len(ids)), what="all jobs processed")
    started = [r["job_id"] for r in programs.records() if r["event"] == "start"]
    assert started == line

    stop_program(relay)
    assert not any(w.kind == "relay" for w in store.workers()), "a relay that stopped cleanly stays registered"
    programs.relay(env, "--wait-for-go", log="relay-again.log")
    wait_until(lambda: "connected to RabbitMQ" in programs.log("relay-again.log"), what="relay connected again")
    assert "(feeding)" in programs.log("relay-again.log")
    info = store.queue_settings(routing.queue)
    assert info is not None and not info.paused
