"""DeliveryLoop against a real partner on 127.0.0.1, on SQLite and PostgreSQL.

Time between attempts is moved with the store's clock_offset, never slept through."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from datetime import timedelta

import pytest

from consumer.delivery import DeliveryLoop
from pqueue import DeliveryStatus, PersistentQ, Status, backoff, callbacks
from tests.callbacks.jobs import finish
from tests.callbacks.partner import Partner, Reply
from tests.support import BIN, free_port

MakeQueue = Callable[..., PersistentQ]
MakeLoop = Callable[..., DeliveryLoop]
SECRET = "partner-secret"


def later(store: PersistentQ) -> None:
    """Move the store's clock past any delivery backoff."""
    store.clock_offset += timedelta(seconds=backoff.MAX_SECONDS * 2)


def test_deliver__posts_outcome_signed_so_verify_accepts_it(
    make_queue: MakeQueue, make_loop: MakeLoop, partner: Partner
) -> None:
    q = make_queue(callback_secret=SECRET)
    job = finish(q, partner.url(), result={"outliers": [3]})

    assert make_loop(q).deliver_due(10) == 1

    [request] = partner.requests()
    delivery = q.delivery(job.id)
    assert delivery is not None
    assert delivery.status == DeliveryStatus.DELIVERED and delivery.attempts == 1
    assert delivery.last_status_code == 200 and delivery.delivered_at is not None
    assert request.path == "/hook"
    assert request.body == delivery.body.encode()
    body = json.loads(request.body)
    assert body["id"] == job.id and body["status"] == "processed" and body["result"] == {"outliers": [3]}
    assert body["attempts"] == 1 and body["finished_at"].endswith("Z")
    assert request.headers["content-type"] == "application/json"
    assert request.headers["idempotency-key"] == f"{job.id}-{job.lease_id}"
    timestamp, signature = request.headers["x-pq-timestamp"], request.headers["x-pq-signature"]
    assert signature.startswith("sha256=")
    assert callbacks.verify(SECRET, timestamp, request.body, signature)
    assert not callbacks.verify(SECRET, timestamp, request.body.replace(b"3", b"4"), signature)
    assert not callbacks.verify(SECRET, timestamp, request.body, signature, now=int(timestamp) + 301)
    assert q.get_job(job.id).status == Status.PROCESSED


def test_deliver__500_twice_then_ok__delivered_with_three_attempts(
    make_queue: MakeQueue, make_loop: MakeLoop, partner: Partner
) -> None:
    q = make_queue()
    job = finish(q, partner.url())
    loop = make_loop(q)
    partner.plan(Reply(500), Reply(500))

    assert loop.deliver_due(10) == 1
    first = q.delivery(job.id)
    assert first is not None and first.status == DeliveryStatus.PENDING
    assert (first.attempts, first.last_status_code) == (1, 500)
    assert first.next_attempt_at > first.last_attempt_at  # type: ignore[operator]
    assert loop.deliver_due(10) == 0, "a failed delivery waits out its backoff"
    later(q)
    assert loop.deliver_due(10) == 1
    later(q)
    assert loop.deliver_due(10) == 1

    delivery = q.delivery(job.id)
    assert delivery is not None
    assert delivery.status == DeliveryStatus.DELIVERED and delivery.attempts == 3
    assert [r.answered for r in partner.requests()] == [500, 500, 200]
    assert {r.headers["idempotency-key"] for r in partner.requests()} == {delivery.idempotency_key}
    assert {r.body for r in partner.requests()} == {delivery.body.encode()}
    assert q.get_job(job.id).attempts == 1, "a delivery retry never re-runs the algorithm"


def test_deliver__partner_down__undeliverable_after_max_attempts_job_stays_processed(
    make_queue: MakeQueue, make_loop: MakeLoop
) -> None:
    q = make_queue(callback_max_attempts=3)
    job = finish(q, f"http://127.0.0.1:{free_port()}/hook")
    loop = make_loop(q)

    for _ in range(3):
        assert loop.deliver_due(10) == 1
        later(q)
    assert loop.deliver_due(10) == 0

    delivery = q.delivery(job.id)
    assert delivery is not None
    assert delivery.status == DeliveryStatus.UNDELIVERABLE and delivery.attempts == 3
    assert delivery.last_status_code is None and "ConnectError" in (delivery.last_error or "")
    after = q.get_job(job.id)
    assert after.status == Status.PROCESSED and after.attempts == 1
    assert [e.to_status for e in q.events(job.id)] == [Status.UNPROCESSED, Status.UNDER_PROCESS, Status.PROCESSED]


@pytest.mark.parametrize("status", [400, 401, 404, 422])
def test_deliver__client_error__undeliverable_at_once(
    make_queue: MakeQueue, make_loop: MakeLoop, partner: Partner, status: int
) -> None:
    q = make_queue()
    job = finish(q, partner.url())
    partner.default = Reply(status)

    make_loop(q).deliver_due(10)

    delivery = q.delivery(job.id)
    assert delivery is not None
    assert delivery.status == DeliveryStatus.UNDELIVERABLE and delivery.attempts == 1
    assert delivery.last_status_code == status and "not retried" in (delivery.last_error or "")


def test_deliver__429_waits_at_least_retry_after(make_queue: MakeQueue, make_loop: MakeLoop, partner: Partner) -> None:
    q = make_queue(callback_backoff_seconds=1)
    job = finish(q, partner.url())
    partner.plan(Reply(429, headers={"Retry-After": "120"}), Reply(408))

    loop = make_loop(q)
    loop.deliver_due(10)
    delivery = q.delivery(job.id)
    assert delivery is not None and delivery.status == DeliveryStatus.PENDING
    assert delivery.last_status_code == 429
    assert delivery.last_attempt_at is not None
    assert delivery.next_attempt_at - delivery.last_attempt_at >= timedelta(seconds=119)
    later(q)
    loop.deliver_due(10)
    delivery = q.delivery(job.id)
    assert delivery is not None and delivery.status == DeliveryStatus.PENDING and delivery.last_status_code == 408


def test_deliver__redirect_not_followed(make_queue: MakeQueue, make_loop: MakeLoop, partner: Partner) -> None:
    q = make_queue()
    job = finish(q, partner.url("/old"))
    partner.default = Reply(302, headers={"Location": partner.url("/elsewhere")})

    make_loop(q).deliver_due(10)

    assert [r.path for r in partner.requests()] == ["/old"]
    delivery = q.delivery(job.id)
    assert delivery is not None
    assert delivery.status == DeliveryStatus.UNDELIVERABLE and delivery.last_status_code == 302
    assert "not followed" in (delivery.last_error or "")


def test_deliver__read_timeout_is_retried(make_queue: MakeQueue, make_loop: MakeLoop, partner: Partner) -> None:
    q = make_queue(callback_timeout=0.3)
    job = finish(q, partner.url())
    partner.plan(Reply(200, delay=3))

    make_loop(q).deliver_due(10)

    delivery = q.delivery(job.id)
    assert delivery is not None and delivery.status == DeliveryStatus.PENDING
    assert delivery.attempts == 1 and "ReadTimeout" in (delivery.last_error or "")


@pytest.mark.parametrize("url", ["http://169.254.169.254/latest/meta-data", "http://[fe80::1]:8080/hook"])
def test_deliver__link_local_target_refused(make_queue: MakeQueue, make_loop: MakeLoop, url: str) -> None:
    q = make_queue()
    job = finish(q, url)

    make_loop(q).deliver_due(10)

    delivery = q.delivery(job.id)
    assert delivery is not None
    assert delivery.status == DeliveryStatus.UNDELIVERABLE and delivery.attempts == 1
    assert "link-local" in (delivery.last_error or "")


def test_deliver__host_outside_callback_allow_refused_at_send_time(
    make_queue: MakeQueue, make_loop: MakeLoop, partner: Partner
) -> None:
    job = finish(make_queue(), partner.url())  # submitted before PQ_CALLBACK_ALLOW left its host out
    q = make_queue(callback_allow="partner.example, 127.0.0.2")

    make_loop(q).deliver_due(10)

    assert partner.requests() == []
    delivery = q.delivery(job.id)
    assert delivery is not None and delivery.status == DeliveryStatus.UNDELIVERABLE
    assert "PQ_CALLBACK_ALLOW" in (delivery.last_error or "")


def test_deliver__allowed_host_delivered(make_queue: MakeQueue, make_loop: MakeLoop, partner: Partner) -> None:
    q = make_queue(callback_allow="partner.example,127.0.0.1")
    job = finish(q, partner.url())

    make_loop(q).deliver_due(10)

    delivery = q.delivery(job.id)
    assert delivery is not None and delivery.status == DeliveryStatus.DELIVERED


def test_deliver__without_secret_sends_no_signature(
    make_queue: MakeQueue, make_loop: MakeLoop, partner: Partner
) -> None:
    q = make_queue()
    finish(q, partner.url())

    make_loop(q).deliver_due(10)

    [request] = partner.requests()
    assert "x-pq-signature" not in request.headers and "x-pq-timestamp" in request.headers


def test_redeliver__after_undeliverable_with_partner_back__delivered(
    make_queue: MakeQueue, make_loop: MakeLoop, partner: Partner
) -> None:
    q = make_queue(callback_max_attempts=2)
    job = finish(q, partner.url())
    loop = make_loop(q)
    partner.default = Reply(503)
    loop.deliver_due(10)
    later(q)
    loop.deliver_due(10)
    gone = q.delivery(job.id)
    assert gone is not None and gone.status == DeliveryStatus.UNDELIVERABLE

    partner.default = Reply(200)
    again = q.redeliver(job.id, actor="admin")
    assert again.status == DeliveryStatus.PENDING and again.attempts == 0
    assert loop.deliver_due(10) == 1

    delivery = q.delivery(job.id)
    assert delivery is not None and delivery.status == DeliveryStatus.DELIVERED and delivery.attempts == 1
    assert [r.answered for r in partner.requests()] == [503, 503, 200]
    assert {r.headers["idempotency-key"] for r in partner.requests()} == {f"{job.id}-{job.lease_id}"}
    assert q.get_job(job.id).status == Status.PROCESSED


def test_deliver__cancelled_and_failed_jobs_send_their_error(
    make_queue: MakeQueue, make_loop: MakeLoop, partner: Partner
) -> None:
    q = make_queue()
    cancelled = q.put_item({"n": 1}, callback_url=partner.url("/cancelled"))
    failed = q.put_item({"n": 2}, callback_url=partner.url("/failed"))
    q.cancel(cancelled, reason="not wanted")
    q.fail(failed, "bad input")

    assert make_loop(q).deliver_due(10) == 2

    bodies = {r.path: json.loads(r.body) for r in partner.requests()}
    assert bodies["/cancelled"]["status"] == "cancelled" and bodies["/cancelled"]["operator_reason"] == "not wanted"
    assert bodies["/cancelled"]["error"] is None, "it never ran; the reason is beside the (absent) error"
    assert bodies["/failed"]["status"] == "manual_intervention" and bodies["/failed"]["operator_reason"] == "bad input"
    assert bodies["/failed"]["error"] is None, "it never ran; the reason is beside the (absent) error"
    assert "result" not in bodies["/failed"]


@pytest.mark.parametrize("backend", ["sqlite"])  # the library call above runs on both
def test_pq_redeliver__after_undeliverable_with_partner_back__delivered(
    make_queue: MakeQueue, make_loop: MakeLoop, partner: Partner, db_env: dict[str, str]
) -> None:
    q = make_queue(callback_max_attempts=1)
    job = finish(q, partner.url())
    loop = make_loop(q)
    partner.default = Reply(500)
    loop.deliver_due(10)
    gone = q.delivery(job.id)
    assert gone is not None and gone.status == DeliveryStatus.UNDELIVERABLE

    partner.default = Reply(200)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PQ_")} | db_env
    done = subprocess.run([str(BIN / "pq"), "redeliver", str(job.id)], env=env, capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert loop.deliver_due(10) == 1

    delivery = q.delivery(job.id)
    assert delivery is not None and delivery.status == DeliveryStatus.DELIVERED
    assert [r.answered for r in partner.requests()] == [500, 200]
