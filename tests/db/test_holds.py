"""A job claimed ahead for a seat (hold_next, finish_and_start), on SQLite and PostgreSQL: it
stays waiting with its attempt uncounted, takes no seat, no claim takes it while the lease it
waits behind runs, it starts in the transaction that records that job, and it lapses by itself
when that lease ends any other way."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta

import pytest

from pqueue import HoldGone, Job, LeaseLost, PersistentQ, Status


@pytest.fixture
def q(make_queue: Callable[..., PersistentQ]) -> PersistentQ:
    return make_queue(max_running=1, lease_seconds=10, retry_backoff_seconds=0)


def running_with_held(q: PersistentQ, jobs: int = 3) -> tuple[Job, Job]:
    """Put `jobs` jobs; w1 claims the first and holds the second behind it."""
    q.put_items([{"n": n} for n in range(jobs)])
    running = q.get_item("w1")
    assert running is not None
    held = q.hold_next("w1", behind_job=running.id, behind_lease=running.lease_id)
    assert held is not None and held.id != running.id
    return running, held


def test_hold__keeps_the_job_waiting_with_its_attempt_uncounted(q: PersistentQ) -> None:
    running, held = running_with_held(q)
    job = q.get_job(held.id)
    assert (job.status, job.attempts, job.started_at) == (Status.UNPROCESSED, 0, None)
    assert q.get_job(running.id).status == Status.UNDER_PROCESS


def test_hold__takes_no_seat_and_no_claim_takes_the_held_job(q: PersistentQ) -> None:
    running, held = running_with_held(q)
    assert q.get_item("w2") is None  # the one seat is the running job's
    q.set_seats("default", 3)
    other = q.get_item("w2")
    assert other is not None and other.id not in (running.id, held.id)
    assert q.get_item("w3") is None  # nothing else is due: the held job is not


def test_hold__one_per_lease_and_only_behind_a_running_lease(q: PersistentQ) -> None:
    running, _held = running_with_held(q)
    assert q.hold_next("w1", behind_job=running.id, behind_lease=running.lease_id) is None
    assert q.hold_next("w1", behind_job=running.id, behind_lease=running.lease_id + 7) is None


def test_hold__only_behind_the_worker_s_own_running_job_in_that_queue(q: PersistentQ) -> None:
    q.put_items([{"n": n} for n in range(3)])
    running = q.get_item("w1")
    assert running is not None
    assert q.hold_next("w2", behind_job=running.id, behind_lease=running.lease_id) is None
    assert q.hold_next("w1", behind_job=running.id, behind_lease=running.lease_id, queue="other") is None
    assert q.hold_next("w1", behind_job=running.id, behind_lease=running.lease_id) is not None


def test_hold__not_on_a_paused_queue(q: PersistentQ) -> None:
    q.put_items([{"n": 0}, {"n": 1}])
    running = q.get_item("w1")
    assert running is not None
    q.pause("default")
    assert q.hold_next("w1", behind_job=running.id, behind_lease=running.lease_id) is None


def test_finish_and_start__records_the_outcome_and_starts_the_held_job_at_once(q: PersistentQ) -> None:
    running, held = running_with_held(q)
    done, started = q.finish_and_start(
        running.id, Status.PROCESSED, lease_id=running.lease_id, worker_id="w1", held_job=held.id, result={"ok": 1}
    )
    assert done.status == Status.PROCESSED
    assert started is not None and started.id == held.id
    assert (started.status, started.attempts, started.worker_id) == (Status.UNDER_PROCESS, 1, "w1")
    assert started.lease_id > held.lease_id and started.started_at is not None
    assert [e.to_status for e in q.events(held.id)] == [Status.UNPROCESSED, Status.UNDER_PROCESS]
    assert q.get_item("w2") is None  # the seat passed to the started job
    # and the next hold goes behind the new lease
    assert q.hold_next("w1", behind_job=started.id, behind_lease=started.lease_id) is not None


def test_finish_and_start__a_lost_lease_records_nothing_and_starts_nothing(q: PersistentQ) -> None:
    running, held = running_with_held(q)
    q.clock_offset += timedelta(seconds=60)
    assert q.rescue_expired() == [(running.id, Status.CRASHED)]
    with pytest.raises(LeaseLost):
        q.finish_and_start(running.id, Status.PROCESSED, lease_id=running.lease_id, worker_id="w1", held_job=held.id)
    assert q.get_job(held.id).status == Status.UNPROCESSED


def test_hold__lapses_when_its_lease_is_rescued_and_the_job_is_claimed_with_its_first_attempt(q: PersistentQ) -> None:
    """The consumer died with a job held: once its running job is rescued, the held job is
    anyone's, its attempt never spent."""
    running, held = running_with_held(q, jobs=2)
    q.clock_offset += timedelta(seconds=60)
    assert q.rescue_expired() == [(running.id, Status.CRASHED)]
    q.set_seats("default", 2)
    claimed = {job.id: job for job in (q.get_item("w2"), q.get_item("w3")) if job is not None}
    assert set(claimed) == {running.id, held.id}
    assert (claimed[held.id].attempts, claimed[running.id].attempts) == (1, 2)


def test_hold__lapses_when_its_job_is_recorded_alone(q: PersistentQ) -> None:
    running, held = running_with_held(q, jobs=2)
    q.update_status(running.id, Status.PROCESSED, lease_id=running.lease_id)
    claimed = q.get_item("w2")
    assert claimed is not None and (claimed.id, claimed.attempts) == (held.id, 1)


def test_finish_and_start__a_held_job_cancelled_meanwhile_is_not_started_and_nothing_is_recorded(
    q: PersistentQ,
) -> None:
    """The held job's process may already run (the helper started it when the running job's
    process exited): the running job's seat stays counted until the consumer has killed it."""
    running, held = running_with_held(q)
    q.cancel(held.id, reason="not wanted")
    with pytest.raises(HoldGone):
        q.finish_and_start(running.id, Status.PROCESSED, lease_id=running.lease_id, worker_id="w1", held_job=held.id)
    assert q.get_job(running.id).status == Status.UNDER_PROCESS
    assert q.get_job(held.id).status == Status.CANCELLED
    assert q.get_item("w2") is None  # the seat is still the running job's
    done = q.update_status(running.id, Status.PROCESSED, lease_id=running.lease_id)
    assert done.status == Status.PROCESSED


def test_finish_and_start__not_past_the_held_job_s_partner_cap_reached_meanwhile(q: PersistentQ) -> None:
    """Held while its partner was below its cap, the job does not start once another consumer
    claimed that partner's job meanwhile: the cap holds as it does for a claim."""
    q.add_partner("a")
    q.add_partner("b", max_running=1)
    q.set_seats("default", 3)
    running_id = q.put_item({"n": 0}, partner="a")
    held_id, other_id = (q.put_item({"n": n}, partner="b") for n in (1, 2))
    running = q.get_item("w1")
    assert running is not None and running.id == running_id
    held = q.hold_next("w1", behind_job=running.id, behind_lease=running.lease_id)
    assert held is not None and held.id == held_id
    other = q.get_item("w2")  # b runs nothing yet: below its cap
    assert other is not None and other.id == other_id
    with pytest.raises(HoldGone):
        q.finish_and_start(running.id, Status.PROCESSED, lease_id=running.lease_id, worker_id="w1", held_job=held.id)
    assert q.get_job(running.id).status == Status.UNDER_PROCESS
    assert q.count_items(status=Status.UNDER_PROCESS) == 2
    q.update_status(other.id, Status.PROCESSED, lease_id=other.lease_id)
    done, started = q.finish_and_start(
        running.id, Status.PROCESSED, lease_id=running.lease_id, worker_id="w1", held_job=held.id
    )
    assert (done.status, started.id, started.attempts) == (Status.PROCESSED, held.id, 1)


def test_hold__idle_consumers_are_not_woken_for_a_held_job(q: PersistentQ) -> None:
    running, held = running_with_held(q, jobs=2)
    q.set_seats("default", 2)
    assert q.wait_for_work(0.05) is False  # the only due job is held


def test_holds_and_claims_race__seats_never_exceeded_and_a_standing_hold_never_taken(
    make_queue: Callable[..., PersistentQ],
) -> None:
    """One worker runs its jobs by holding the next and starting it with the last outcome; two
    others claim and finish beside it, on two seats. A reader counts the running jobs all along."""
    stores = [make_queue(max_running=2, lease_seconds=30, retry_backoff_seconds=0) for _ in range(4)]
    holder, *claimers, reader = stores
    holder.put_items([{"n": n} for n in range(60)])
    lost_holds: list[int] = []
    peak = [0]
    done = threading.Event()

    def hold_and_start() -> None:
        current = holder.get_item("holder")
        while current is not None:
            held = holder.hold_next("holder", behind_job=current.id, behind_lease=current.lease_id)
            if held is None:
                holder.update_status(current.id, Status.PROCESSED, lease_id=current.lease_id)
                current = holder.get_item("holder")
                continue
            try:
                _, current = holder.finish_and_start(
                    current.id, Status.PROCESSED, lease_id=current.lease_id, worker_id="holder", held_job=held.id
                )
            except HoldGone:
                lost_holds.append(held.id)
                holder.update_status(current.id, Status.PROCESSED, lease_id=current.lease_id)
                current = holder.get_item("holder")

    def claim_and_finish(store: PersistentQ, name: str) -> None:
        while (job := store.get_item(name)) is not None:
            store.update_status(job.id, Status.PROCESSED, lease_id=job.lease_id)

    def count_running() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], reader.count_items(status=Status.UNDER_PROCESS))

    threads = [threading.Thread(target=hold_and_start)]
    threads += [threading.Thread(target=claim_and_finish, args=(store, f"w{i}")) for i, store in enumerate(claimers)]
    counter = threading.Thread(target=count_running)
    counter.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    done.set()
    counter.join(10)
    assert lost_holds == [], "a job held behind a running lease was taken by another worker"
    assert peak[0] <= 2
    finished = reader.get_all_items(status=Status.PROCESSED, limit=100).items
    assert len(finished) == 60 and {job.attempts for job in finished} == {1}


def test_holds__say_which_jobs_are_held_by_whom_behind_which_job_and_since_when(q: PersistentQ) -> None:
    running, held = running_with_held(q)
    waiting = [job for job in q.next_items(limit=10) if job.id != held.id]
    found = q.holds([running.id, held.id, *(job.id for job in waiting), 999_999])
    assert list(found) == [held.id]
    hold = found[held.id]
    assert (hold.job_id, hold.worker_id, hold.behind_job) == (held.id, "w1", running.id)
    assert abs((hold.held_at - q.now()).total_seconds()) < 60
    assert q.holds([]) == {}
    assert q.stats().held == {"default": 1}


def test_holds__a_lapsed_hold_or_a_held_job_an_operator_ended_is_not_held(q: PersistentQ) -> None:
    running, held = running_with_held(q)
    q.cancel(held.id, reason="not wanted")
    assert q.holds([held.id]) == {} and q.stats().held == {}
    other = q.next_items(limit=1)[0]
    assert q.hold_next("w1", behind_job=running.id, behind_lease=running.lease_id) is None  # one per lease
    q.update_status(running.id, Status.PROCESSED, lease_id=running.lease_id)
    assert q.holds([held.id, other.id]) == {} and q.stats().held == {}


def test_holds__counted_per_queue_and_in_a_partner_s_view_only_for_its_own_jobs(q: PersistentQ) -> None:
    running, held = running_with_held(q)
    assert q.stats(partner="default").held == {"default": 1}
    assert q.stats(partner="nobody").held == {}
    q.update_status(running.id, Status.PROCESSED, lease_id=running.lease_id)
    assert q.stats().held == {}  # the lease it waited behind ended: the job waits like any other
    assert q.get_job(held.id).status == Status.UNPROCESSED


def test_rehearse_hand_off__changes_nothing_and_a_hold_then_works(q: PersistentQ) -> None:
    running, held = running_with_held(q)
    before = [(j.id, j.status, j.attempts, j.lease_id) for j in (q.get_job(running.id), q.get_job(held.id))]
    events = len(q.events(held.id))
    q.rehearse_hand_off()
    q.rehearse_hand_off("other")
    after = [(j.id, j.status, j.attempts, j.lease_id) for j in (q.get_job(running.id), q.get_job(held.id))]
    assert after == before and len(q.events(held.id)) == events
    assert q.holds([held.id])[held.id].behind_job == running.id  # the hold still stands
    done, started = q.finish_and_start(
        running.id, Status.PROCESSED, lease_id=running.lease_id, worker_id="w1", held_job=held.id
    )
    assert (done.status, started.id, started.status) == (Status.PROCESSED, held.id, Status.UNDER_PROCESS)
