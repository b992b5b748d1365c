"""The whole flow through a real RabbitMQ: a backlog drains with the broker holding the window."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable

import pytest

from pqueue import NewJob, PersistentQ, Status
from relay.topology import Routing
from tests.relay.rabbit import Rabbit
from tests.relay.running import RelayPrograms, all_final, assert_no_overlapping_runs, counts
from tests.support import wait_until

pytestmark = [pytest.mark.rabbitmq, pytest.mark.process, pytest.mark.timeout(120)]


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_backlog__window_of_50_holds_and_every_job_ends_processed_or_manual(
    store: PersistentQ,
    relay_env: Callable[..., dict[str, str]],
    routing: Routing,
    rabbit: Rabbit,
    programs: RelayPrograms,
) -> None:
    forced = {7, 42, 77}  # these payloads make the agent fail every attempt
    jobs = [NewJob({"n": n, "fail": n in forced}, queue=routing.queue, max_attempts=2) for n in range(100)]
    ids = [put.id for put in store.put_items(jobs)]
    env = relay_env(PQ_RELAY_WINDOW="50")
    programs.relay(env)

    def outstanding() -> int:
        """Jobs sent and not yet answered, per the database, checked against the window each time."""
        sent = counts(store, routing.queue).get(Status.UNDER_PROCESS.value, 0)
        depth = rabbit.depth(routing.outbox_queue)
        assert sent <= 50, f"{sent} jobs outstanding, window is 50"
        assert depth <= 50, f"{depth} messages waiting in the outbox, window is 50"
        return sent

    # With no agent yet, the relay fills the window and stops there.
    wait_until(lambda: outstanding() == 50 and rabbit.depth(routing.outbox_queue) == 50, what="window filled")
    programs.agent(env, "a1", "--fail-rate", "0.1", "--seed", "1", "--work-seconds", "0.02")
    programs.agent(env, "a2", "--fail-rate", "0.1", "--seed", "2", "--work-seconds", "0.02")

    def drained() -> bool:
        outstanding()
        return all_final(store, routing.queue, len(ids))

    wait_until(drained, timeout=90, what="all 100 jobs processed or manual_intervention")
    jobs_now = [store.get_job(job_id) for job_id in ids]
    for job in jobs_now:
        if job.payload["fail"]:
            assert job.status == Status.MANUAL_INTERVENTION, job
            assert job.attempts == 2
        elif job.status == Status.PROCESSED:
            assert job.result["echo"] == job.payload
    assert sum(job.status == Status.PROCESSED for job in jobs_now) >= 90
    assert_no_overlapping_runs(programs.records())
    assert rabbit.depth(routing.inbox_queue) == 0
    assert rabbit.depth(routing.dead_queue) == 0


def test_relay_sigkilled_mid_flow__restart_loses_nothing_and_never_runs_a_job_twice_at_once(
    store: PersistentQ,
    relay_env: Callable[..., dict[str, str]],
    routing: Routing,
    rabbit: Rabbit,
    programs: RelayPrograms,
) -> None:
    ids = [put.id for put in store.put_items([NewJob({"n": n}, queue=routing.queue) for n in range(60)])]
    # A short lease: a job claimed but not yet published when the relay dies comes back soon.
    env = relay_env(PQ_RELAY_WINDOW="10", PQ_RELAY_LEASE_SECONDS="5")
    programs.agent(env, "a1", "--work-seconds", "0.05")
    programs.agent(env, "a2", "--work-seconds", "0.05")
    wait_until(lambda: programs.agent_ready("a1") and programs.agent_ready("a2"), what="agents consuming")
    relay = programs.relay(env)

    wait_until(lambda: counts(store, routing.queue).get("processed", 0) >= 15, timeout=30, what="15 processed")
    os.killpg(relay.pid, signal.SIGKILL)
    relay.wait(10)
    # While the relay is down the agents finish what they hold; their status waits in the inbox.
    wait_until(lambda: rabbit.depth(routing.outbox_queue) == 0, timeout=20, what="agents emptied the outbox")
    programs.relay(env, log="relay-restarted.log")

    wait_until(lambda: all_final(store, routing.queue, len(ids)), timeout=60, what="all 60 jobs processed")
    assert all(store.get_job(job_id).status == Status.PROCESSED for job_id in ids)
    assert_no_overlapping_runs(programs.records())
    finished = {line["job_id"] for line in programs.records() if line["event"] == "finish"}
    assert finished == set(ids)
