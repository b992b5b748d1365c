"""Each partner's callbacks are signed with its own secret, and with the old one beside the new
one while a rotation's grace lasts; partners without one fall back to PQ_CALLBACK_SECRET. A real
partner on 127.0.0.1 receives them, on SQLite and PostgreSQL; the grace ends by moving the
store's clock."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from consumer.delivery import DeliveryLoop
from pqueue import Job, PersistentQ, callbacks
from tests.callbacks.partner import Partner, Received

MakeQueue = Callable[..., PersistentQ]
MakeLoop = Callable[..., DeliveryLoop]


def deliver(store: PersistentQ, loop: DeliveryLoop, partner: Partner, owner: str) -> tuple[Job, Received]:
    """A job of `owner` processed and its callback sent; what the partner received."""
    job_id = store.put_item({"n": 1}, callback_url=partner.url(), partner=owner)
    claimed = store.get_item("worker-1")
    assert claimed is not None and claimed.id == job_id
    job = store.update_status(job_id, "processed", lease_id=claimed.lease_id, result={"ok": True})
    assert loop.deliver_due(10) == 1
    return job, partner.requests()[-1]


def accepts(secret: str, request: Received) -> bool:
    headers = request.headers
    return callbacks.verify(secret, headers["x-pq-timestamp"], request.body, headers.get("x-pq-signature"))


def test_secrets__a_rotation_signs_with_both_for_its_grace_then_with_the_new_one(
    make_queue: MakeQueue, make_loop: MakeLoop, partner: Partner
) -> None:
    q = make_queue(callback_secret="everyone's")
    q.add_partner("acme")
    q.set_partner("acme", callback_secret="acme-old")
    loop = make_loop(q)

    _, before = deliver(q, loop, partner, "acme")
    assert accepts("acme-old", before) and not accepts("everyone's", before)
    assert "," not in before.headers["x-pq-signature"]

    q.set_partner("acme", callback_secret="acme-new", secret_grace_seconds=3600)
    _, during = deliver(q, loop, partner, "acme")
    sent_at = during.headers["x-pq-timestamp"]
    new, old = callbacks.sign("acme-new", sent_at, during.body), callbacks.sign("acme-old", sent_at, during.body)
    assert during.headers["x-pq-signature"] == f"{new},{old}"
    assert accepts("acme-new", during) and accepts("acme-old", during) and not accepts("everyone's", during)

    q.clock_offset += timedelta(hours=2)
    _, after = deliver(q, loop, partner, "acme")
    assert accepts("acme-new", after) and not accepts("acme-old", after)
    assert "," not in after.headers["x-pq-signature"]


def test_secrets__a_partner_without_its_own_secret_is_signed_with_pq_callback_secret(
    make_queue: MakeQueue, make_loop: MakeLoop, partner: Partner
) -> None:
    q = make_queue(callback_secret="everyone's")
    q.add_partner("acme")
    q.set_partner("acme", callback_secret="acme's")
    q.add_partner("beta")
    loop = make_loop(q)

    _, beta = deliver(q, loop, partner, "beta")
    _, default = deliver(q, loop, partner, "default")
    _, acme = deliver(q, loop, partner, "acme")

    assert accepts("everyone's", beta) and accepts("everyone's", default)
    assert accepts("acme's", acme) and not accepts("everyone's", acme) and not accepts("acme's", beta)


def test_secrets__without_any_secret_a_partners_callback_is_unsigned_but_one_with_its_own_is_signed(
    make_queue: MakeQueue, make_loop: MakeLoop, partner: Partner
) -> None:
    q = make_queue()
    q.add_partner("acme")
    q.set_partner("acme", callback_secret="acme's")
    loop = make_loop(q)

    _, default = deliver(q, loop, partner, "default")
    _, acme = deliver(q, loop, partner, "acme")

    assert "x-pq-signature" not in default.headers
    assert accepts("acme's", acme)
