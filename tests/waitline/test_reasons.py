"""Every reason a job waits comes from a real situation and goes when the situation ends; the
estimates say why they are absent; another partner is never named. Both backends; the queue's
pause and its consumer are real `pq` and `pq-consumer` processes."""

from __future__ import annotations

import subprocess
from datetime import timedelta

import pytest

from admin.render import iso, wait_json
from pqueue import Job, PersistentQ, Wait
from tests.programs import Programs, stop_program
from tests.support import BIN, wait_until


def wait_of(q: PersistentQ, job_id: int, *, served: bool = True) -> Wait:
    """The job's wait; `served`: as a consumer of its queue seen just now would have it."""
    if served:
        q.register_worker("consumer-1", kind="consumer", queue=q.get_job(job_id).queue, host="here", pid=1)
    wait = q.wait(job_id)
    assert wait is not None
    return wait


def codes(q: PersistentQ, job_id: int, *, served: bool = True) -> list[str]:
    return [reason.code for reason in wait_of(q, job_id, served=served).reasons]


def reason(q: PersistentQ, job_id: int, code: str, *, served: bool = True) -> dict[str, object]:
    found = [r for r in wait_json(wait_of(q, job_id, served=served))["reasons"] if r["code"] == code]
    assert found, f"no {code} in {codes(q, job_id)}"
    return dict(found[0])


def keys_of(value: object) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {key for item in value.values() for key in keys_of(item)}
    if isinstance(value, list):
        return {key for item in value for key in keys_of(item)}
    return set()


def texts_of(value: object) -> list[str]:
    if isinstance(value, dict):
        return [text for item in value.values() for text in texts_of(item)]
    if isinstance(value, list):
        return [text for item in value for text in texts_of(item)]
    return [str(value)]


def run(q: PersistentQ, seconds: float, queue: str | None = None) -> Job:
    job = q.get_item("w", queue=queue)
    assert job is not None
    q.clock_offset += timedelta(seconds=seconds)
    return q.update_status(job.id, "processed", lease_id=job.lease_id)


def seed_history(q: PersistentQ, runs: int = 5, seconds: float = 20.0, partner: str | None = None) -> None:
    for _ in range(runs):
        q.put_item({"seed": True}, partner=partner)
        run(q, seconds)


def test_scheduled__until_its_run_after_then_gone(q: PersistentQ) -> None:
    job = q.put_item({"n": 1}, run_after_seconds=60)
    assert codes(q, job)[0] == "scheduled"
    assert reason(q, job, "scheduled")["until"] == iso(q.get_job(job).run_after)
    q.clock_offset += timedelta(seconds=61)
    assert "scheduled" not in codes(q, job)


def test_backoff__attempt_k_of_n_until_the_retry_then_gone(q: PersistentQ) -> None:
    job_id = q.put_item({"n": 1})
    job = q.get_item("w")
    assert job is not None
    q.update_status(job.id, "crashed", lease_id=job.lease_id, error="RuntimeError: once")
    backoff = reason(q, job_id, "backoff")
    assert (backoff["attempt"], backoff["max_attempts"]) == (2, 3)
    assert codes(q, job_id)[0] == "backoff"
    q.clock_offset += timedelta(seconds=q.settings.retry_backoff_seconds * 2)
    assert "backoff" not in codes(q, job_id)


def test_partner_cap_and_seat_busy__while_its_jobs_run_then_gone(q: PersistentQ) -> None:
    q.add_partner("a", max_running=1)
    q.set_seats(q.settings.queue, 2)
    seed_history(q, partner="a")
    first, second = q.put_item(1, partner="a"), q.put_item(2, partner="a")
    running = q.get_item("w")
    assert running is not None and running.id == first
    cap = reason(q, second, "partner_cap")
    assert (cap["running"], cap["cap"]) == (1, 1) and cap["until"] is not None
    assert "seat_busy" not in codes(q, second)  # one of two seats is free
    q.update_status(first, "processed", lease_id=running.lease_id)
    assert "partner_cap" not in codes(q, second)

    q.set_seats(q.settings.queue, 1)
    q.set_partner("a", no_max_running=True)
    third = q.put_item(3, partner="a")
    claimed = q.get_item("w")
    assert claimed is not None and claimed.id == second
    assert reason(q, third, "seat_busy")["until"] is not None
    q.update_status(second, "processed", lease_id=claimed.lease_id)
    assert "seat_busy" not in codes(q, third)


def test_behind_own_jobs_and_fair_share__count_jobs_never_names(q: PersistentQ) -> None:
    q.add_partner("acme")
    q.add_partner("beta")
    seed_history(q, partner="acme")
    beta_job = q.put_item({"secret": "beta's payload"}, partner="beta")  # beta has used nothing: it goes first
    acme_jobs = [q.put_item({"n": n}, partner="acme") for n in range(2)]
    wait = wait_of(q, acme_jobs[1])
    assert wait.position is not None and (wait.position.own, wait.position.others) == (1, 1)
    assert reason(q, acme_jobs[1], "behind_own_jobs")["jobs"] == 1
    fair = reason(q, acme_jobs[1], "fair_share")
    assert fair["jobs"] == 1 and fair["weight_share"] == 0.5 and fair["used_share"] == 1.0
    shown = wait_json(wait)
    assert not keys_of(shown) & {"id", "job_id", "partner", "payload", "name"}
    assert not any("beta" in text or str(beta_job) == text for text in texts_of(shown))
    run(q, 5)  # beta's job
    assert "fair_share" not in codes(q, acme_jobs[1])


def test_estimates__absent_with_why_without_history_then_p50_p90_within_latest(q: PersistentQ) -> None:
    job = q.put_item({"n": 1})
    wait = wait_of(q, job)
    assert wait.eta_start is not None and wait.eta_start.p50 is None and wait.eta_start.p90 is None
    assert "no successful run" in (wait.eta_start.why or "") and wait.eta_start.latest is not None
    assert wait.confidence == "low"
    q.cancel(job)
    seed_history(q, runs=30, seconds=20)
    ahead, job = q.put_item(1), q.put_item(2)
    running = q.get_item("w")
    assert running is not None and running.id == ahead
    wait = wait_of(q, job)
    start, finish = wait.eta_start, wait.eta_finish
    assert start is not None and start.p50 and start.p90 and start.latest and finish.p50 and finish.latest
    assert wait.computed_at < start.p50 <= start.p90 <= start.latest < finish.latest
    assert start.p50 < finish.p50 and wait.confidence == "medium"
    running_wait = wait_of(q, ahead)
    assert running_wait.position is None and running_wait.eta_start is None and running_wait.reasons == []
    assert running_wait.eta_finish.p50 is not None


def pq(db_env: dict[str, str], *args: str) -> None:
    subprocess.run([str(BIN / "pq"), *args], env=db_env, check=True, capture_output=True, timeout=120)


@pytest.mark.process
@pytest.mark.timeout(180)
def test_queue_paused_and_no_consumer__from_real_processes(
    q: PersistentQ, db_env: dict[str, str], programs: Programs
) -> None:
    job = q.put_item({"n": 1})
    assert codes(q, job, served=False) == ["no_consumer"]
    wait = wait_of(q, job, served=False)
    assert wait.eta_start is not None and wait.eta_start.latest is None and "no consumer" in (wait.eta_start.why or "")

    pq(db_env, "pause")
    paused = reason(q, job, "queue_paused", served=False)
    assert paused["by"] == "admin" and paused["since"] is not None
    assert codes(q, job, served=False)[:2] == ["queue_paused", "no_consumer"]

    consumer = programs.start("pq-consumer", env=db_env, log="consumer.log")
    try:
        wait_until(
            lambda: "no_consumer" not in codes(q, job, served=False), timeout=120, what="the consumer registered"
        )
        assert codes(q, job, served=False)[0] == "queue_paused"
        pq(db_env, "resume")
        wait_until(lambda: q.get_job(job).status != "unprocessed", timeout=120, what="the consumer claimed the job")
    finally:
        stop_program(consumer)
    assert q.queues()[0].paused is False


def test_estimates__a_job_kind_named_in_the_payload_has_its_own_run_times(q: PersistentQ) -> None:
    for kind, seconds in (("short", 10), ("long", 600)):
        for _ in range(5):
            q.put_item({"kind": kind})
            run(q, seconds)
    ahead = q.put_item({"kind": "long"})
    short, long_ = q.put_item({"kind": "short"}), q.put_item({"kind": "long"})
    wait_of(q, ahead)  # a consumer seen just now
    waits = {job.id: wait for job, wait in q.waits(limit=10)}
    for job_id in (ahead, short, long_):  # alone or in a list, the same answer
        listed, alone = waits[job_id], wait_of(q, job_id)
        assert listed.eta_start and listed.eta_start.p50 and alone.eta_start and alone.eta_start.p50
        assert listed.eta_start.p50 - listed.computed_at == alone.eta_start.p50 - alone.computed_at
    start, finish = waits[short].eta_start, waits[short].eta_finish
    assert start is not None and start.p50 is not None and finish.p50 is not None
    assert 590 <= (start.p50 - waits[short].computed_at).total_seconds() <= 620  # behind one long run
    assert 5 <= (finish.p50 - start.p50).total_seconds() <= 15  # its own kind's run time, not the mix's
    long_start, long_finish = waits[long_].eta_start, waits[long_].eta_finish
    assert long_start is not None and long_start.p50 and long_finish.p50
    assert 550 <= (long_finish.p50 - long_start.p50).total_seconds() <= 650
