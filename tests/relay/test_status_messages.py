"""Status messages from agents: applied once, fenced by lease, and refused ones dead-lettered."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from pqueue import PersistentQ, Status
from relay.topology import Routing
from tests.relay.rabbit import Rabbit
from tests.relay.running import RelayPrograms
from tests.support import wait_until

pytestmark = [pytest.mark.rabbitmq, pytest.mark.process, pytest.mark.timeout(90)]


def sent_job(store: PersistentQ, rabbit: Rabbit, routing: Routing, job_id: int) -> tuple[Any, dict[str, Any]]:
    """Wait for the relay to publish the job, and take its message off the outbox."""
    wait_until(lambda: store.get_job(job_id).status == Status.UNDER_PROCESS, what=f"job {job_id} sent")
    messages = wait_until(lambda: rabbit.take_all(routing.outbox_queue), what="the job message")
    assert len(messages) == 1
    properties, body = messages[0]
    return properties, json.loads(body)


def test_job_message__carries_the_claim_and_is_persistent_and_expires_with_the_lease(
    store: PersistentQ,
    relay_env: Callable[..., dict[str, str]],
    routing: Routing,
    rabbit: Rabbit,
    programs: RelayPrograms,
) -> None:
    job_id = store.put_item({"reading": 4.2}, queue=routing.queue, max_attempts=5)
    programs.relay(relay_env(PQ_RELAY_LEASE_SECONDS="60"))

    properties, message = sent_job(store, rabbit, routing, job_id)

    job = store.get_job(job_id)
    assert message == {
        "job_id": job_id,
        "lease_id": job.lease_id,
        "queue": routing.queue,
        "payload": {"reading": 4.2},
        "attempt": 1,
        "max_attempts": 5,
        "lease_seconds": 60.0,
    }
    assert properties.delivery_mode == 2
    assert properties.content_type == "application/json"
    assert properties.message_id == f"{job_id}-{job.lease_id}"
    assert properties.expiration == "60000"
    assert job.worker_id is not None and job.worker_id.startswith("relay-")


def test_bad_status_messages__dead_lettered_with_a_reason_and_duplicates_ignored(
    store: PersistentQ,
    relay_env: Callable[..., dict[str, str]],
    routing: Routing,
    rabbit: Rabbit,
    programs: RelayPrograms,
) -> None:
    job_id = store.put_item({"n": 1}, queue=routing.queue)
    elsewhere = store.put_item({"n": 2}, queue=routing.queue + "-other")
    relay = programs.relay(relay_env())
    _, message = sent_job(store, rabbit, routing, job_id)
    lease_id = message["lease_id"]

    rabbit.send_status(b"{not json")
    rabbit.send_status({"job_id": 999999, "lease_id": 1, "status": "success", "result": 1})
    rabbit.send_status({"job_id": elsewhere, "lease_id": 1, "status": "success", "result": 1})
    rabbit.send_status({"job_id": job_id, "lease_id": lease_id, "status": "error"})  # no error text
    rabbit.send_status({"job_id": job_id, "lease_id": lease_id, "status": "done"})
    rabbit.send_status({"job_id": job_id, "lease_id": lease_id, "status": "processing"})
    rabbit.send_status({"job_id": job_id, "lease_id": lease_id, "status": "success", "result": {"first": True}})
    rabbit.send_status({"job_id": job_id, "lease_id": lease_id, "status": "success", "result": {"first": False}})
    rabbit.send_status({"job_id": job_id, "lease_id": lease_id, "status": "error", "error": "late"})
    rabbit.send_status({"job_id": job_id, "lease_id": lease_id, "status": "processing"})

    wait_until(lambda: rabbit.depth(routing.dead_queue) == 5, what="five refused messages dead-lettered")
    wait_until(lambda: programs.log().count("ignored ") == 3, what="three late messages ignored")
    dead = rabbit.take_all(routing.dead_queue)
    reasons = sorted(properties.headers["x-pq-reason"] for properties, _ in dead)
    assert any("not JSON" in reason for reason in reasons)
    assert any("job 999999 not found" in reason for reason in reasons)
    assert any(f"belongs to queue '{routing.queue}-other'" in reason for reason in reasons)
    assert any("needs a non-empty error string" in reason for reason in reasons)
    assert any("status must be one of" in reason for reason in reasons)
    assert b"{not json" in [body for _, body in dead]

    job = store.get_job(job_id)
    assert job.status == Status.PROCESSED
    assert job.result == {"first": True}
    assert job.attempts == 1
    assert store.get_job(elsewhere).status == Status.UNPROCESSED
    assert rabbit.depth(routing.inbox_queue) == 0
    assert relay.poll() is None, "the relay died on a bad message"


def test_operator_cancels_a_job_an_agent_holds__recorded_at_its_next_processing_report(
    store: PersistentQ,
    relay_env: Callable[..., dict[str, str]],
    routing: Routing,
    rabbit: Rabbit,
    programs: RelayPrograms,
) -> None:
    job_id = store.put_item({"n": 1}, queue=routing.queue)
    programs.relay(relay_env())
    _, message = sent_job(store, rabbit, routing, job_id)

    store.cancel(job_id, reason="customer withdrew it")
    assert store.get_job(job_id).status == Status.UNDER_PROCESS  # the agent may still be working
    rabbit.send_status({"job_id": job_id, "lease_id": message["lease_id"], "status": "processing"})

    wait_until(lambda: store.get_job(job_id).status == Status.CANCELLED, what="job cancelled")
    assert store.get_job(job_id).operator_reason == "customer withdrew it"


def test_no_word_from_any_agent__lease_ends_job_rescued_and_sent_again_and_the_stale_copy_expired(
    store: PersistentQ,
    relay_env: Callable[..., dict[str, str]],
    routing: Routing,
    rabbit: Rabbit,
    programs: RelayPrograms,
) -> None:
    job_id = store.put_item({"n": 1}, queue=routing.queue)
    programs.relay(relay_env(PQ_RELAY_LEASE_SECONDS="2"))
    wait_until(lambda: store.get_job(job_id).status == Status.UNDER_PROCESS, what="job sent")

    wait_until(lambda: store.get_job(job_id).lease_id == 2, timeout=30, what="job rescued and sent again")
    events = [(e.from_status, e.to_status, e.actor) for e in store.events(job_id)]
    assert (Status.UNDER_PROCESS, Status.CRASHED, "relay") in events
    messages = wait_until(lambda: rabbit.take_all(routing.outbox_queue), what="the second copy")
    assert [json.loads(body)["lease_id"] for _, body in messages] == [2], "the first copy outlived its lease"


def test_processing_reports__keep_a_long_job_s_lease_alive(
    store: PersistentQ,
    relay_env: Callable[..., dict[str, str]],
    routing: Routing,
    rabbit: Rabbit,
    programs: RelayPrograms,
) -> None:
    env = relay_env(PQ_RELAY_LEASE_SECONDS="2")
    programs.agent(env, "a1", "--work-seconds", "3")  # reports `processing` every 2/3 s
    wait_until(lambda: programs.agent_ready("a1"), what="agent consuming")
    job_id = store.put_item({"n": 1}, queue=routing.queue)
    programs.relay(env)

    wait_until(lambda: store.get_job(job_id).status == Status.PROCESSED, timeout=30, what="job processed")
    job = store.get_job(job_id)
    assert (job.attempts, job.lease_id) == (1, 1), "the lease ran out although the agent kept reporting"


def test_released__job_sent_again_with_no_attempt_spent_unless_an_operator_asked_to_stop_it(
    store: PersistentQ,
    relay_env: Callable[..., dict[str, str]],
    routing: Routing,
    rabbit: Rabbit,
    programs: RelayPrograms,
) -> None:
    given_back = store.put_item({"n": 1}, queue=routing.queue)
    programs.relay(relay_env())
    _, message = sent_job(store, rabbit, routing, given_back)

    rabbit.send_status({"job_id": given_back, "lease_id": message["lease_id"], "status": "released", "agent": "a1"})
    _, again = sent_job(store, rabbit, routing, given_back)
    assert again["lease_id"] == message["lease_id"] + 1
    assert again["attempt"] == 1, "giving the job back spent an attempt"
    assert f"job {given_back}: agent a1 gave it back unfinished" in programs.log()

    store.cancel(given_back, reason="customer withdrew it")
    rabbit.send_status({"job_id": given_back, "lease_id": again["lease_id"], "status": "released"})
    wait_until(lambda: store.get_job(given_back).status == Status.CANCELLED, what="the cancel recorded")
    assert store.get_job(given_back).operator_reason == "customer withdrew it"
