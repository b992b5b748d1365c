"""A queue's predicted line is simulated once and kept (PQ_WAIT_SNAPSHOT_SECONDS): every job's wait
from the kept line is the wait a store that simulates afresh for every question gives (two intake
replicas on one database answer alike), a job submitted after the line is placed as a fresh
simulation places it, and the line is simulated again when a run starts or ends, the queue is
paused, or it is older than the setting. Both backends; time moved by the store's clock offset."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from pqueue import PersistentQ, Wait

PARTNERS = ("a", "b", "c")
KEPT = 600.0  # the kept line's life here: long, so that no assertion depends on the test's speed


def run(q: PersistentQ, seconds: float) -> None:
    job = q.get_item("w")
    assert job is not None
    q.clock_offset += timedelta(seconds=seconds)
    q.update_status(job.id, "processed", lease_id=job.lease_id)


def served(q: PersistentQ) -> None:
    q.register_worker("consumer-1", kind="consumer", queue=q.settings.queue, host="here", pid=1)


def asked_then(store: PersistentQ, job_id: int, kept: Wait) -> Wait:
    """The job's wait from `store` with its clock moved to the kept line's moment (no sleeping)."""
    store.clock_offset += kept.computed_at - store.now()
    wait = store.wait(job_id)
    assert wait is not None
    return wait


def same(kept: Wait, fresh: Wait) -> None:
    """The same answer (the fresh one asked at the kept line's moment, give or take the time
    between setting the fresh store's clock and its reading it, which a starved test process
    can stretch past a second: each time may move by as much as the two moments differ)."""
    slack = 0.5 + abs((fresh.computed_at - kept.computed_at).total_seconds())
    assert kept.position == fresh.position
    assert [(r.code, r.details) for r in kept.reasons] == [(r.code, r.details) for r in fresh.reasons]
    assert kept.confidence == fresh.confidence
    for mine, theirs in ((kept.eta_start, fresh.eta_start), (kept.eta_finish, fresh.eta_finish)):
        assert (mine is None) == (theirs is None)
        if mine is None or theirs is None:
            continue
        for a, b in ((mine.p50, theirs.p50), (mine.p90, theirs.p90), (mine.latest, theirs.latest)):
            assert (a is None) == (b is None)
            if a is not None and b is not None:
                assert abs((a - b).total_seconds()) < slack


def busy_queue(q: PersistentQ) -> list[int]:
    """Three partners of weights 1, 2, 3 with a history, priorities, a scheduled job and a retry."""
    for weight, name in enumerate(PARTNERS, start=1):
        q.add_partner(name, weight=float(weight))
        for _ in range(5):
            q.put_item({"seed": name}, partner=name)
            run(q, 10.0 * weight)
    crashed = q.put_item({"retry": True}, partner="a")
    job = q.get_item("w")
    assert job is not None and job.id == crashed
    q.update_status(job.id, "crashed", lease_id=job.lease_id, error="RuntimeError: once")
    ids = [crashed]
    for n in range(12):
        ids.append(q.put_item({"n": n}, partner=PARTNERS[n % 3], priority=(n % 4) - 1))
    ids.append(q.put_item({"later": True}, partner="b", run_after_seconds=300))
    return ids


def test_a_kept_line_answers_every_job_as_a_fresh_simulation_does(make_queue: Callable[..., PersistentQ]) -> None:
    q, fresh = make_queue(wait_snapshot_seconds=KEPT), make_queue(wait_snapshot_seconds=0)
    ids = busy_queue(q)
    served(q)
    kept_waits = {job_id: wait for job_id in ids if (wait := q.wait(job_id)) is not None}
    assert len(kept_waits) == len(ids)
    assert len({wait.computed_at for wait in kept_waits.values()}) == 1  # one line served them all
    for job_id, kept in kept_waits.items():
        same(kept, asked_then(fresh, job_id, kept))
    # A job submitted after the line: placed by extending it, as a fresh simulation places it.
    newer = q.put_item({"new": True}, partner="c", priority=-1)
    kept_new = q.wait(newer)
    assert kept_new is not None and kept_new.computed_at == kept_waits[ids[0]].computed_at  # the kept line's
    same(kept_new, asked_then(fresh, newer, kept_new))
    # /next from the kept line: the same order and the same waits.
    listed = q.waits(limit=50)
    fresh.clock_offset += listed[0][1].computed_at - fresh.now()
    assert [job.id for job, _ in listed] == [job.id for job, _ in fresh.waits(limit=50)]
    for (_, wait), (_, alone) in zip(listed, fresh.waits(limit=50), strict=True):
        same(wait, alone)


def test_a_job_past_its_partners_line_is_placed_as_a_fresh_simulation_places_it(
    make_queue: Callable[..., PersistentQ],
) -> None:
    """With 100 partners a line holds each partner's first 20 jobs; the 30th is past it."""
    q, fresh = make_queue(wait_snapshot_seconds=KEPT), make_queue(wait_snapshot_seconds=0)
    for n in range(100):
        q.add_partner(f"p{n}")
    for name in ("p0", "p1"):
        q.put_item({"seed": name}, partner=name)
        run(q, 30.0)
    for name in ("p0", "p0", "p0", "p0", "p1", "p1", "p1", "p1"):  # five runs each for own models
        q.put_item({"seed": name}, partner=name)
        run(q, 30.0)
    deep = [q.put_item({"n": n}, partner="p0") for n in range(30)]
    others = [q.put_item({"n": n}, partner="p1") for n in range(3)]
    served(q)
    for job_id in (deep[-1], deep[25], others[-1]):
        kept = q.wait(job_id)
        assert kept is not None and kept.position is not None
        same(kept, asked_then(fresh, job_id, kept))
    kept = q.wait(deep[-1])
    assert kept is not None and kept.position is not None and kept.position.own == 29


def test_the_line_is_simulated_again_when_a_run_starts_or_ends_the_queue_pauses_or_it_ages(
    make_queue: Callable[..., PersistentQ],
) -> None:
    q = make_queue(wait_snapshot_seconds=KEPT)
    ids = busy_queue(q)
    served(q)

    def moment() -> datetime:
        wait = q.wait(ids[-2])
        assert wait is not None
        return wait.computed_at

    first = moment()
    assert moment() == first  # kept
    q.put_item({"n": 99}, partner="a")
    assert moment() == first  # a submission alone does not cost a new line
    job = q.get_item("w")
    assert job is not None
    started = moment()
    assert started != first  # a run started
    running = q.wait(job.id)
    assert running is not None and running.eta_finish.p50 is not None and running.computed_at == started
    q.update_status(job.id, "processed", lease_id=job.lease_id)
    ended = moment()
    assert ended != started  # it ended
    q.pause(q.settings.queue)
    paused = q.wait(ids[-2])
    assert paused is not None and paused.reasons[0].code == "queue_paused" and paused.computed_at != ended
    q.resume(q.settings.queue)
    resumed = moment()
    # Halfway through its life, counted from the line's own moment (a slow machine's seconds
    # between the two lines must not count), then past it.
    q.clock_offset += resumed + timedelta(seconds=KEPT / 2) - q.now()
    served(q)  # its consumer still seen: the live consumers are part of the line's stamp
    assert moment() == resumed
    q.clock_offset += timedelta(seconds=KEPT / 2)
    assert moment() != resumed  # as old as the setting


def test_a_queue_not_asked_while_its_line_could_serve_is_dropped(make_queue: Callable[..., PersistentQ]) -> None:
    """A process keeps the lines of the queues asked lately only: a new line drops every line as old
    as the setting (it could serve no question); with the setting 0 no line is kept."""
    q, fresh = make_queue(wait_snapshot_seconds=KEPT), make_queue(wait_snapshot_seconds=0)
    left, right = q.put_item({"n": 1}, queue="left"), q.put_item({"n": 2}, queue="right")
    q.wait(left)
    q.clock_offset += timedelta(seconds=KEPT / 2)
    q.wait(right)
    assert q._lines.queues() == {"left", "right"}
    q.clock_offset += timedelta(seconds=KEPT / 2)
    q.wait(right)  # served by its kept line: nothing computed, nothing dropped
    assert q._lines.queues() == {"left", "right"}
    q.put_item({"n": 3}, queue="other")
    other = q.put_item({"n": 4}, queue="other")
    q.wait(other)  # a new line, when left's is as old as the setting
    assert q._lines.queues() == {"right", "other"}
    q.clock_offset += timedelta(seconds=KEPT)
    q.wait(left)
    assert q._lines.queues() == {"left"}
    assert fresh.wait(left) is not None and fresh.wait(right) is not None
    assert fresh._lines.queues() == set()
