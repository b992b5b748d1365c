"""The background delivery thread: bounded concurrency, two consumers on one database, TLS."""

from __future__ import annotations

import ssl
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import trustme

from consumer.delivery import DeliveryLoop, lock_seconds_for
from pqueue import DeliveryStatus, PersistentQ, SettingsError
from tests.callbacks.jobs import finish
from tests.callbacks.partner import Partner, Reply
from tests.support import wait_until

MakeQueue = Callable[..., PersistentQ]
MakeLoop = Callable[..., DeliveryLoop]


def all_delivered(store: PersistentQ, job_ids: list[int]) -> bool:
    deliveries = [store.delivery(job_id) for job_id in job_ids]
    return all(d is not None and d.status == DeliveryStatus.DELIVERED for d in deliveries)


def test_lock__outlasts_an_attempt() -> None:
    assert lock_seconds_for(10) > 3 * 10


def test_loop__background_thread_delivers_at_most_concurrency_at_once(
    make_queue: MakeQueue, make_loop: MakeLoop, partner: Partner
) -> None:
    q = make_queue()
    job_ids = [finish(q, partner.url()).id for _ in range(10)]
    partner.default = Reply(200, delay=0.3)
    loop = make_loop(q, concurrency=4, poll_seconds=0.1)

    loop.start()
    wait_until(lambda: all_delivered(q, job_ids), timeout=30, what="every callback delivered")

    assert 2 <= partner.peak_open <= 4
    assert len(partner.requests()) == 10
    assert loop.stop(5) is True


def test_two_loops__never_send_one_delivery_twice_at_once(
    make_queue: MakeQueue, make_loop: MakeLoop, partner: Partner
) -> None:
    first, second = make_queue(callback_timeout=2), make_queue(callback_timeout=2)
    job_ids = [finish(first, partner.url()).id for _ in range(16)]
    partner.default = Reply(200, delay=0.1)
    loops = [make_loop(first, "consumer-a", poll_seconds=0.05), make_loop(second, "consumer-b", poll_seconds=0.05)]

    for loop in loops:
        loop.start()
    wait_until(lambda: all_delivered(first, job_ids), timeout=30, what="every callback delivered")

    sent = Counter(r.headers["idempotency-key"] for r in partner.requests())
    assert partner.overlaps == []
    assert set(sent.values()) == {1} and len(sent) == 16


def test_loop__outcome_after_another_consumer_took_the_delivery_over__is_dropped(
    make_queue: MakeQueue, make_loop: MakeLoop, partner: Partner
) -> None:
    slow_store, fast_store = make_queue(), make_queue()
    job_id = finish(slow_store, partner.url()).id
    slow, fast = make_loop(slow_store, "consumer-slow"), make_loop(fast_store, "consumer-fast")
    [stalled] = slow_store.claim_deliveries("consumer-slow", lock_seconds=slow.lock_seconds)
    fast_store.clock_offset = timedelta(seconds=slow.lock_seconds + 1)  # the slow one's lock ran out

    assert fast.deliver_due() == 1
    partner.default = Reply(400)  # the slow consumer's late attempt is refused by the partner
    assert slow.attempt(stalled) is None

    delivery = slow_store.delivery(job_id)
    assert delivery is not None and (delivery.status, delivery.attempts) == (DeliveryStatus.DELIVERED, 1)
    assert [r.answered for r in partner.requests()] == [200, 400]


def test_loop__stop_while_partner_holds_a_request__reports_it_in_flight(
    make_queue: MakeQueue, make_loop: MakeLoop, partner: Partner
) -> None:
    q = make_queue(callback_timeout=30)
    finish(q, partner.url())
    partner.default = Reply(200, hold=True)
    loop = make_loop(q, poll_seconds=0.05)
    loop.start()
    wait_until(lambda: partner.open_now == 1, what="the callback in flight")

    assert loop.stop(0.2) is False
    partner.release()
    wait_until(lambda: loop.in_flight == 0, what="the held callback answered")


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def tls_partner(ca: trustme.CA) -> Iterator[Partner]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    server = Partner(ssl_context=context).start()
    yield server
    server.stop()


def test_tls__unknown_certificate_refused(make_queue: MakeQueue, make_loop: MakeLoop, tls_partner: Partner) -> None:
    q = make_queue()
    job = finish(q, tls_partner.url())

    make_loop(q).deliver_due(10)

    delivery = q.delivery(job.id)
    assert delivery is not None and delivery.status == DeliveryStatus.PENDING
    assert "CERTIFICATE_VERIFY_FAILED" in (delivery.last_error or "")
    assert tls_partner.requests() == []


def test_tls__configured_ca_bundle_verifies_partner(
    make_queue: MakeQueue, make_loop: MakeLoop, tls_partner: Partner, ca: trustme.CA, tmp_path: Path
) -> None:
    bundle = tmp_path / "partner-ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    q = make_queue(callback_ca_bundle=bundle)
    job = finish(q, tls_partner.url())

    make_loop(q).deliver_due(10)

    delivery = q.delivery(job.id)
    assert delivery is not None and delivery.status == DeliveryStatus.DELIVERED
    assert len(tls_partner.requests()) == 1


def test_loop__unreadable_ca_bundle_is_one_clear_error(make_queue: MakeQueue, tmp_path: Path) -> None:
    q = make_queue(callback_ca_bundle=tmp_path / "missing.pem")
    with pytest.raises(SettingsError, match="PQ_CALLBACK_CA_BUNDLE=.*missing.pem.* cannot be used"):
        DeliveryLoop(q, q.settings, "w1")
