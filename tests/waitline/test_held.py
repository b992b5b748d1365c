"""A job a consumer holds (hold_next, pqueue/sql/holds.py) starts in its running job's seat the
moment that job ends, with no pick: the submitter's view predicts it so, first in line, even when
the fair share would pick another partner's job at that moment; and the order predicted is the
order in which the held job and then the claims start. Both backends; the clock moved by the
store's offset."""

from __future__ import annotations

from datetime import timedelta

from pqueue import Job, PersistentQ


def run(q: PersistentQ, seconds: float) -> None:
    job = q.get_item("seed")
    assert job is not None
    q.clock_offset += timedelta(seconds=seconds)
    q.update_status(job.id, "processed", lease_id=job.lease_id)


def history(q: PersistentQ, *run_seconds: tuple[str, float]) -> None:
    """Five runs of each partner, each as long as given."""
    for partner, seconds in run_seconds:
        for _ in range(5):
            q.put_item({"seed": True}, partner=partner)
            run(q, seconds)


def held_line(q: PersistentQ) -> tuple[Job, int, int]:
    """Partners a and b, b having used ten times a's seat time; a's job running in seat w, b's job
    and a's next waiting, a's held behind the running one: (the running job, a's, b's)."""
    q.add_partner("a")
    q.add_partner("b")
    history(q, ("a", 10.0), ("b", 100.0))
    first = q.put_item({"n": 1}, partner="a")
    b_job = q.put_item({"n": 2}, partner="b")
    a_job = q.put_item({"n": 3}, partner="a")
    running = q.get_item("w")
    assert running is not None and running.id == first
    held = q.hold_next("w", behind_job=running.id, behind_lease=running.lease_id)
    assert held is not None and held.id == a_job  # a's tag is the lower one now
    return running, a_job, b_job


def test_a_held_job_is_predicted_to_start_when_the_job_it_waits_behind_ends(q: PersistentQ) -> None:
    running, a_job, b_job = held_line(q)
    # a's first job has run 600 s, far longer than a's runs: its end is predicted far off, and by then
    # a's tag has passed b's, so the fair share alone would start b's job first (the control below).
    q.clock_offset += timedelta(seconds=600)
    q.register_worker("w", kind="consumer", queue=q.settings.queue, host="here", pid=1)
    predicted = q.waits(limit=10)
    assert [job.id for job, _ in predicted] == [a_job, b_job]
    wait, behind = q.wait(a_job), q.wait(b_job)
    assert wait is not None and wait.position is not None and wait.position.total == 0
    assert [reason.code for reason in wait.reasons] == ["seat_busy"]
    assert behind is not None and behind.position is not None and behind.position.total == 1
    assert wait.eta_start is not None and wait.eta_start.p50 is not None
    assert behind.eta_start is not None and behind.eta_start.p50 is not None
    assert wait.computed_at < wait.eta_start.p50 < behind.eta_start.p50

    # The seat passes: the held job starts with the running job's outcome, then the claim takes b's.
    _, started = q.finish_and_start(running.id, "processed", lease_id=running.lease_id, worker_id="w", held_job=a_job)
    assert started.id == a_job and started.status == "under_process"
    q.clock_offset += timedelta(seconds=10)
    q.update_status(a_job, "processed", lease_id=started.lease_id)
    nxt = q.get_item("w")
    assert nxt is not None and nxt.id == b_job


def test_without_the_hold_the_fair_share_would_start_the_other_partners_job_first(q: PersistentQ) -> None:
    """The control: the same line with the hold lapsed (its running job recorded alone) is
    predicted, and claimed, the other way round once a's long run is charged."""
    running, a_job, b_job = held_line(q)
    q.clock_offset += timedelta(seconds=600)
    q.update_status(running.id, "processed", lease_id=running.lease_id)  # recorded alone: the hold lapses
    q.register_worker("w", kind="consumer", queue=q.settings.queue, host="here", pid=1)
    assert [job.id for job, _ in q.waits(limit=10)] == [b_job, a_job]
    nxt = q.get_item("w")
    assert nxt is not None and nxt.id == b_job


def test_a_held_job_whose_partner_reached_its_cap_meanwhile_waits_for_its_partners_run(q: PersistentQ) -> None:
    """Two seats, a capped at one running job: the job held behind b's short run cannot start at
    its end once another seat's claim started a's long one (finish_and_start refuses it); it is
    predicted to start when a's run ends, not when b's does."""
    q.add_partner("a", max_running=1)
    q.add_partner("b")
    history(q, ("a", 100.0), ("b", 10.0))
    q.set_seats(q.settings.queue, 2)
    short = q.put_item({"n": 1}, partner="b")
    running = q.get_item("w1")
    assert running is not None and running.id == short
    held_job, other = q.put_item({"n": 2}, partner="a"), q.put_item({"n": 3}, partner="a")
    held = q.hold_next("w1", behind_job=running.id, behind_lease=running.lease_id)
    assert held is not None and held.id == held_job
    long_run = q.get_item("w2")  # the other seat: a's next job, a now at its cap
    assert long_run is not None and long_run.id == other
    q.register_worker("w1", kind="consumer", queue=q.settings.queue, host="here", pid=1)
    wait = q.wait(held_job)
    assert wait is not None and wait.eta_start is not None and wait.eta_start.p50 is not None
    assert (wait.eta_start.p50 - wait.computed_at).total_seconds() > 50  # a's 100 s run, not b's 10 s one
    assert "partner_cap" in [reason.code for reason in wait.reasons]
