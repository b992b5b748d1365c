"""The order the submitter's view predicts is the order in which the real claim then takes the
jobs: random mixes of partners, weights, priorities, delayed jobs, a retry in backoff and one to
three seats, with a seeded history of run times, on both backends, time moved by the store's
clock offset."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pqueue import Job, PersistentQ

PARTNERS = ("a", "b", "c")
# Run times with no common multiples among the first few dozen runs, so two partners' tags never
# tie by accident in the prediction while the real clock's milliseconds break the tie in the
# claim; minutes long, so that a retry's backoff (seconds) and a delayed job's run_after never
# fall within the test's own milliseconds of the moment a seat frees.
RUN_TIMES = (317.3, 529.1, 743.3, 1161.7, 271.9)
DELAYS = (0.0, 0.0, 450.5, 1350.5)
# Weights whose ratios are no ratio of small whole numbers: with several seats, claims at one moment
# come milliseconds apart, and a partner of weight 2 whose job started two claims ago has exactly
# the live seat time per weight of one of weight 1 whose job started one claim ago when the claims
# are evenly spaced; which of them the claim then picks is the milliseconds' chance, not a rule
# any prediction can follow. With these weights no such tie falls within a few claims.
WEIGHTS = (1.0, 1.7, 2.9)
SEEDED_RUNS = 5


@dataclass(frozen=True)
class Mix:
    partners: int
    weights: tuple[float, ...]
    run_times: tuple[float, ...]
    jobs: list[tuple[int, int, float]]  # (partner, priority, delay in seconds)
    retry: bool  # one job of partner a failed once and waits out its backoff
    seats: int = 1


mixes = st.integers(1, 3).flatmap(
    lambda n: st.builds(
        Mix,
        partners=st.just(n),
        weights=st.tuples(*[st.sampled_from(WEIGHTS)] * n),
        run_times=st.permutations(RUN_TIMES).map(lambda times: tuple(times[:n])),  # one per partner
        jobs=st.lists(
            st.tuples(st.integers(0, n - 1), st.sampled_from((-1, 0, 1)), st.sampled_from(DELAYS)),
            min_size=1,
            max_size=9,
        ),
        retry=st.booleans(),
        seats=st.integers(1, 3),
    )
)


def set_clock(q: PersistentQ, moment: datetime) -> None:
    """Move the store's clock so that it reads `moment` now (no sleeping): the milliseconds the
    test itself takes do not add up between the prediction and the claims."""
    q.clock_offset += moment - q.now()


def hold_exactly(q: PersistentQ, job: Job, seconds: float) -> None:
    """Move the store's clock so that the run has held the seat `seconds`."""
    assert job.started_at is not None
    set_clock(q, job.started_at + timedelta(seconds=seconds))


def run_next(q: PersistentQ, queue: str, seconds_of: dict[str, float]) -> Job | None:
    job = q.get_item("w", queue=queue)
    if job is None:
        return None
    hold_exactly(q, job, seconds_of[job.partner])
    q.update_status(job.id, "processed", lease_id=job.lease_id)
    return job


def prepare(q: PersistentQ, mix: Mix, queue: str) -> dict[str, float]:
    names = PARTNERS[: mix.partners]
    for name, weight in zip(names, mix.weights, strict=True):
        if name not in {p.name for p in q.partners()}:
            q.add_partner(name)
        q.set_partner(name, weight=float(weight))
    seconds_of = dict(zip(names, mix.run_times, strict=True))
    for name in names:  # the history the prediction draws its run times from
        for _ in range(SEEDED_RUNS):
            q.put_item({"seed": name}, queue=queue, partner=name)
            assert run_next(q, queue, seconds_of) is not None
    if mix.retry:
        q.put_item({"retry": True}, queue=queue, partner="a")
        job = q.get_item("w", queue=queue)
        assert job is not None
        hold_exactly(q, job, seconds_of["a"])
        q.update_status(job.id, "crashed", lease_id=job.lease_id, error="RuntimeError: once")
    for index, (partner, priority, delay) in enumerate(mix.jobs):
        # Delayed jobs come due seconds apart: two submitted milliseconds apart with the same delay
        # come due within the test's own milliseconds of each other, and which of them a claim
        # then sees as due is the test's timing, not the prediction's.
        spread = delay + 1.25 * index if delay else 0.0
        q.put_item({"n": 1}, queue=queue, partner=names[partner], priority=priority, run_after_seconds=spread)
    return seconds_of


def end_of(job: Job, seconds_of: dict[str, float]) -> datetime:
    assert job.started_at is not None
    return job.started_at + timedelta(seconds=seconds_of[job.partner])


def claim_all(q: PersistentQ, queue: str, seats: int, seconds_of: dict[str, float], since: datetime) -> list[int]:
    """Claim every waiting job in turn as consumers with `seats` seats would, from the moment
    `since` the prediction was computed: fill every free seat, then end the run that ends first
    (each lasts its partner's run time exactly), or when a seat is free and a job comes due
    before that, move the clock to the moment it does."""
    taken: list[int] = []
    running: list[Job] = []
    set_clock(q, since)
    while True:
        while len(running) < seats and (job := q.get_item(f"w{len(running)}", queue=queue)) is not None:
            taken.append(job.id)
            running.append(job)
        ends = sorted(end_of(job, seconds_of) for job in running)
        waiting = q.next_items(queue=queue, limit=100) if len(running) < seats else []
        due = min((job.run_after for job in waiting if job.run_after > q.now()), default=None)
        if not running and due is None:
            assert not q.next_items(queue=queue, limit=100)
            return taken
        if due is not None and (not ends or due < ends[0]):
            set_clock(q, due + timedelta(milliseconds=1))
            continue
        first = min(running, key=lambda job: end_of(job, seconds_of))
        hold_exactly(q, first, seconds_of[first.partner])
        q.update_status(first.id, "processed", lease_id=first.lease_id)
        running.remove(first)


@pytest.mark.timeout(600)
def test_predicted_order_is_the_claims_order(q: PersistentQ) -> None:
    @settings(
        max_examples=20,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(mix=mixes)
    def check(mix: Mix) -> None:
        queue = f"q-{uuid.uuid4().hex[:8]}"
        q.set_seats(queue, mix.seats)
        seconds_of = prepare(q, mix, queue)
        predicted = q.waits(queue=queue, limit=100)
        positions = [wait.position.total for _, wait in predicted if wait.position]
        assert sorted(positions) == list(range(len(predicted)))
        since = predicted[0][1].computed_at
        assert claim_all(q, queue, mix.seats, seconds_of, since) == [job.id for job, _ in predicted]

    check()
