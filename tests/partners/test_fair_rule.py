"""The fair-share rule in the claim, on both backends, with time moved by the store's clock offset
(no sleeping): what each outcome charges, where a newcomer starts, the cap, weights, and that one
partner keeps today's order."""

from __future__ import annotations

from datetime import timedelta

import pytest

from pqueue import InvalidInput, Job, NewJob, PersistentQ, Status
from tests.partners.ledger import tag


def claim(q: PersistentQ) -> Job:
    job = q.get_item("w")
    assert job is not None
    return job


def hold(q: PersistentQ, seconds: float) -> None:
    q.clock_offset += timedelta(seconds=seconds)


def run(q: PersistentQ, seconds: float) -> Job:
    """Claim the next job, hold the seat `seconds`, record it processed."""
    job = claim(q)
    hold(q, seconds)
    return q.update_status(job.id, "processed", lease_id=job.lease_id)


def test_one_partner__priority_then_arrival_as_always(q: PersistentQ) -> None:
    ids = [q.put_item(n, priority=p) for n, p in enumerate([5, 0, 5, -1, 0])]
    order = [run(q, 1).id for _ in ids]
    assert order == [ids[3], ids[1], ids[4], ids[0], ids[2]]


def test_priority_orders_a_partners_own_jobs_only(q: PersistentQ) -> None:
    q.add_partner("a")
    q.add_partner("b")
    a_jobs = [q.put_item(n, partner="a", priority=0) for n in range(2)]
    b_urgent = q.put_item("urgent", partner="b", priority=-100)
    first = run(q, 10)
    second = run(q, 10)
    assert first.id == a_jobs[0]  # ties on the tag go to the earlier head job, whatever its priority
    assert second.id == b_urgent


@pytest.mark.parametrize("outcome", ["processed", "crashed", "manual_intervention", "cancelled"])
def test_every_outcome_charges_the_seconds_the_run_held_the_seat(q: PersistentQ, outcome: str) -> None:
    q.add_partner("a", weight=2)
    q.put_item({"n": 1}, partner="a")
    job = claim(q)
    hold(q, 30)
    q.update_status(job.id, outcome, lease_id=job.lease_id, error="x" if outcome != "processed" else None)
    assert tag(q, "a") == pytest.approx(15, abs=0.5)  # 30 s at weight 2


def test_a_rescued_run_is_charged_once_up_to_its_rescue(q: PersistentQ) -> None:
    q.add_partner("a")
    q.put_item({"n": 1}, partner="a")
    claim(q)  # its consumer is killed: nothing records an outcome
    hold(q, q.settings.lease_seconds * 3)
    assert len(q.rescue_expired()) == 1
    charged = tag(q, "a")
    assert charged == pytest.approx(q.settings.lease_seconds * 3, abs=1)
    hold(q, 600)
    assert q.rescue_expired() == []
    assert tag(q, "a") == charged


def test_a_released_run_is_charged_too(q: PersistentQ) -> None:
    q.put_item({"n": 1})
    job = claim(q)
    hold(q, 12)
    q.release(job.id, job.lease_id)
    assert tag(q, "default") == pytest.approx(12, abs=0.5)


def test_a_newcomer_after_an_hour_of_anothers_work_gets_its_share_plus_one_run_at_most(q: PersistentQ) -> None:
    q.add_partner("a")
    q.add_partner("b")
    q.put_items([NewJob(n, partner="a") for n in range(200)])
    for _ in range(60):  # an hour of A alone, one-minute runs
        run(q, 60)
    q.put_items([NewJob(n, partner="b") for n in range(200)])

    held = {"a": 0.0, "b": 0.0}
    while sum(held.values()) < 3600:  # the next hour, both backlogged
        job = run(q, 60)
        held[job.partner] += 60
    assert held["b"] <= 1800 + 60
    assert held["a"] >= 1800 - 60


def test_idle_time_is_not_banked(q: PersistentQ) -> None:
    q.add_partner("a")
    q.add_partner("b")
    q.put_items([NewJob(n, partner="a") for n in range(100)])
    q.put_item("early", partner="b")
    for _ in range(20):  # B had one job and then nothing, while A worked on
        run(q, 60)
    q.put_items([NewJob(n, partner="b") for n in range(50)])
    partners = [run(q, 60).partner for _ in range(10)]
    assert partners.count("b") <= 6, partners  # B's idle time did not become a burst


def test_weights_share_the_seat_time(q: PersistentQ) -> None:
    q.add_partner("a", weight=3)
    q.add_partner("b")
    q.put_items([NewJob(n, partner="a") for n in range(100)])
    q.put_items([NewJob(n, partner="b") for n in range(100)])
    held = {"a": 0.0, "b": 0.0}
    for _ in range(80):
        job = claim(q)
        seconds = 40 if job.partner == "a" else 10
        hold(q, seconds)
        q.update_status(job.id, "processed", lease_id=job.lease_id)
        held[job.partner] += seconds
    assert held["a"] / sum(held.values()) == pytest.approx(0.75, abs=0.05)


def test_a_new_weight_counts_for_charges_from_then_on(q: PersistentQ) -> None:
    q.add_partner("a")
    q.put_items([NewJob(n, partner="a") for n in range(3)])
    run(q, 20)
    q.set_partner("a", weight=4)
    run(q, 20)
    assert tag(q, "a") == pytest.approx(20 + 5, abs=0.5)


def test_cap__a_partner_at_its_cap_is_passed_over_on_a_free_seat(q: PersistentQ) -> None:
    q.set_seats("default", 3)
    q.add_partner("a", max_running=1)
    q.add_partner("b")
    q.put_items([NewJob(n, partner="a") for n in range(5)])
    first = claim(q)
    assert first.partner == "a"
    q.put_item("b's", partner="b")
    second = claim(q)
    assert second.partner == "b"
    assert q.get_item("w") is None  # a free seat, but A is at its cap and B has nothing
    q.update_status(first.id, "processed", lease_id=first.lease_id)
    assert claim(q).partner == "a"


def test_jobs_of_unknown_or_disabled_partners_are_refused_and_nothing_is_stored(q: PersistentQ) -> None:
    q.add_partner("a")
    q.disable_partner("a")
    for partner in ("a", "nobody"):
        with pytest.raises(InvalidInput, match=f"'{partner}' is not a partner here, or is disabled"):
            q.put_items([NewJob(1), NewJob(2, partner=partner)])
    with pytest.raises(InvalidInput, match="is not a partner name"):
        q.put_item(1, partner="Bad Name")
    assert q.count_items() == 0


def test_a_disabled_partners_stored_jobs_still_run(q: PersistentQ) -> None:
    q.add_partner("a")
    q.put_item(1, partner="a")
    q.disable_partner("a")
    assert run(q, 1).status == Status.PROCESSED


def test_idempotency_keys_are_per_partner(q: PersistentQ) -> None:
    q.add_partner("a")
    q.add_partner("b")
    mine = q.put_item({"x": 1}, idempotency_key="k", partner="a")
    theirs = q.put_item({"x": 1}, idempotency_key="k", partner="b")
    again = q.put_item({"x": 1}, idempotency_key="k", partner="a")
    assert mine != theirs and again == mine
    assert q.get_job(theirs).partner == "b"
