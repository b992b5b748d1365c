"""Claiming ahead (PQ_CLAIM_AHEAD=1), Consumer.run_once in this process against a real database and
a real helper: while a job runs its next job is held (waiting, attempt uncounted) in a ready job
process, the helper starts it once the running job's process is gone, and one transaction
records the outcome with the held job's start; a stop, a cancelled held job and a database that
does not answer each kill the held job's process before the running job's seat is freed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from consumer.claim_ahead import HandedOver
from consumer.helper_link import HelperLink
from consumer.spares import Spares
from consumer.worker import Consumer, Step
from pqueue import PersistentQ, Settings, Status
from tests.consumer.algos import read_log
from tests.programs import pid_alive
from tests.support import wait_until

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def consumer(make_queue: Callable[..., PersistentQ], make_settings: Callable[..., Settings]) -> Iterator[Consumer]:
    options = {"algorithm": "tests.consumer.algos:act", "lease_seconds": 4, "retry_backoff_seconds": 0}
    settings = make_settings(claim_ahead=True, **options)
    store = make_queue(**options)
    spares = Spares(HelperLink(settings))
    spares.link.start()
    spares.link.wait_ready()
    try:
        yield Consumer(store, settings, "test-worker", spares)
    finally:
        spares.close()


def store_of(consumer: Consumer) -> PersistentQ:
    store = consumer.store
    assert isinstance(store, PersistentQ)
    return store


def held_while_running(consumer: Consumer, running: int, held: int) -> threading.Thread:
    """A thread that waits until `held` is held behind `running`, and checks what the database says
    meanwhile (from another connection): the held job waits, its attempt uncounted."""
    seen: dict[str, object] = {}

    def watch() -> None:
        def holding() -> bool:
            ahead = consumer.ahead
            return ahead is not None and ahead.held is not None and ahead.held.job.id == held

        wait_until(holding, timeout=20, what=f"job {held} to be held")
        job = store_of(consumer).get_job(held)
        seen.update(status=job.status, attempts=job.attempts, running=store_of(consumer).get_job(running).status)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    thread.seen = seen  # type: ignore[attr-defined]
    return thread


def test_claim_ahead__the_next_job_is_held_then_started_with_the_outcome_in_one_step(
    consumer: Consumer, tmp_path: Path
) -> None:
    q = store_of(consumer)
    log = tmp_path / "runs.jsonl"
    first = q.put_item({"do": "sleep", "seconds": 1.0, "log": str(log), "tag": "first"})
    second = q.put_item({"do": "sleep", "seconds": 0.3, "log": str(log), "tag": "second"})
    watcher = held_while_running(consumer, first, second)

    step, handed = consumer.run_once(claim_next=True)
    watcher.join(20)
    assert watcher.seen == {"status": Status.UNPROCESSED, "attempts": 0, "running": Status.UNDER_PROCESS}  # type: ignore[attr-defined]
    assert step == Step.RAN and isinstance(handed, HandedOver) and handed.job.id == second
    assert q.get_job(first).status == Status.PROCESSED
    started = q.get_job(second)
    assert (started.status, started.attempts, started.worker_id) == (Status.UNDER_PROCESS, 1, consumer.worker_id)
    assert "held ahead" in (q.events(second)[-1].message or "")

    step, after = consumer.run_once(handed, claim_next=True)
    assert step == Step.RAN and after is None
    done = q.get_job(second)
    assert (done.status, done.attempts) == (Status.PROCESSED, 1)
    events = read_log(log)
    ends = {e["tag"]: e["t"] for e in events if e["event"] == "end"}
    starts = {e["tag"]: e["t"] for e in events if e["event"] == "start"}
    assert starts["second"] >= ends["first"]  # never beside the job before it
    assert len([e for e in events if e["event"] == "start"]) == 2


def test_claim_ahead__idle_two_job_processes_wait__the_first_job_s_hold_takes_one_forked_before_it(
    consumer: Consumer, tmp_path: Path
) -> None:
    """Idle, a consumer claiming ahead keeps two job processes: the first job of a backlog takes
    one and its hold the other. With one, the hold waited for a process forked once that job had
    started (ready 8 to 16 ms later at load 5; under heavier load after a 50 ms job had ended,
    so the next job went by a claim after a gap)."""
    q = store_of(consumer)
    assert consumer.run_once(claim_next=True)[0] == Step.IDLE
    consumer.spares.expect_back_to_back(False)  # what the loop does when idle
    link = consumer.spares.link._process
    assert link is not None
    helper = psutil.Process(link.pid)

    def two_forked() -> set[int]:
        pids = {child.pid for child in helper.children()}
        return pids if len(pids) >= 2 else set()

    forked_before = wait_until(two_forked, timeout=20, what="two job processes while idle")
    first = q.put_item({"do": "sleep", "seconds": 0.5})
    second = q.put_item({"do": "ok"})
    step, handed = consumer.run_once(claim_next=True)
    assert step == Step.RAN and isinstance(handed, HandedOver) and handed.job.id == second
    assert handed.process.pid in forked_before
    assert q.get_job(first).status == Status.PROCESSED
    assert consumer.run_once(handed, claim_next=True)[0] == Step.RAN
    assert q.get_job(second).status == Status.PROCESSED


def test_claim_ahead__a_stop_kills_the_held_job_first_and_it_waits_again_unspent(consumer: Consumer) -> None:
    q = store_of(consumer)
    first = q.put_item({"do": "sleep", "seconds": 1.5})
    second = q.put_item({"do": "ok"})
    watcher = held_while_running(consumer, first, second)
    pids: list[int] = []

    def stop_once_held() -> None:
        watcher.join(20)
        assert consumer.ahead is not None and consumer.ahead.held is not None
        pids.append(consumer.ahead.held.process.pid)
        consumer.shutdown.request()

    stopper = threading.Thread(target=stop_once_held, daemon=True)
    stopper.start()
    assert consumer.run_once(claim_next=True) == (Step.RAN, None)
    stopper.join(20)
    assert q.get_job(first).status == Status.PROCESSED  # finished within its grace
    back = q.get_job(second)
    assert (back.status, back.attempts) == (Status.UNPROCESSED, 0)
    assert pids and not pid_alive(pids[0])
    assert q.get_item("someone-else") is not None  # the hold lapsed: anyone may claim it


def test_claim_ahead__a_held_job_cancelled_meanwhile_is_killed_before_the_outcome_frees_the_seat(
    consumer: Consumer,
) -> None:
    q = store_of(consumer)
    first = q.put_item({"do": "sleep", "seconds": 1.0})
    second = q.put_item({"do": "sleep", "seconds": 30})
    third = q.put_item({"do": "ok"})
    watcher = held_while_running(consumer, first, second)
    pids: list[int] = []

    def cancel_once_held() -> None:
        watcher.join(20)
        assert consumer.ahead is not None and consumer.ahead.held is not None
        pids.append(consumer.ahead.held.process.pid)
        q.cancel(second, reason="not wanted")

    canceller = threading.Thread(target=cancel_once_held, daemon=True)
    canceller.start()
    step, chained = consumer.run_once(claim_next=True)
    canceller.join(20)
    assert step == Step.RAN
    assert q.get_job(first).status == Status.PROCESSED
    assert q.get_job(second).status == Status.CANCELLED
    assert pids and not pid_alive(pids[0])
    # the outcome went without the held job: with the next claim (the third job, claimed as before),
    # or alone when no new spare was ready in time (a loaded machine), and the next run claims it
    assert not isinstance(chained, HandedOver)
    assert chained is None or chained.job.id == third
    consumer.run_once(chained)
    assert q.get_job(third).status == Status.PROCESSED


def test_claim_ahead__jobs_back_to_back_each_run_once_never_two_at_a_time(consumer: Consumer, tmp_path: Path) -> None:
    q = store_of(consumer)
    log = tmp_path / "runs.jsonl"
    # 3 s of work: longer than the 2 s between rescues, which a hold does first while a job runs
    ids = [q.put_item({"do": "sleep", "seconds": 0.3, "log": str(log), "tag": f"job-{n}"}) for n in range(10)]
    consumer.run(drain=True)
    assert [q.get_job(i).status for i in ids] == [Status.PROCESSED] * 10
    assert [q.get_job(i).attempts for i in ids] == [1] * 10
    events = read_log(log)
    starts = [e for e in events if e["event"] == "start"]
    assert [e["tag"] for e in starts] == [f"job-{n}" for n in range(10)]
    ends = {e["tag"]: e["t"] for e in events if e["event"] == "end"}
    for before, after in zip(starts, starts[1:], strict=False):
        assert after["t"] >= ends[before["tag"]]
    held = [i for i in ids if any("held ahead" in (e.message or "") for e in q.events(i))]
    assert held == ids[1:], "each job after the first was held while the one before it ran"
