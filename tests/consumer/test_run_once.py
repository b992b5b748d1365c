"""Consumer.run_once in this process, against a real database and a real algorithm helper."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from consumer.helper_link import HelperLink
from consumer.loading import AlgorithmUnavailable
from consumer.spares import Spares
from consumer.worker import Consumer, Step
from pqueue import PersistentQ, Settings, Status, load_settings
from tests.programs import pid_alive
from tests.support import wait_until

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def consumer(make_queue: Callable[..., PersistentQ], make_settings: Callable[..., Settings]) -> Iterator[Consumer]:
    settings = make_settings(algorithm="tests.consumer.algos:act", lease_seconds=2, retry_backoff_seconds=0)
    store = make_queue(algorithm="tests.consumer.algos:act", lease_seconds=2, retry_backoff_seconds=0)
    spares = Spares(HelperLink(settings))
    spares.link.start()
    spares.link.wait_ready()
    try:
        yield Consumer(store, settings, "test-worker", spares)
    finally:
        spares.close()


def store_of(consumer: Consumer) -> PersistentQ:
    """The consumer's store with every role: it holds a WorkQueue, the tests also read jobs."""
    store = consumer.store
    assert isinstance(store, PersistentQ)
    return store


def test_run_once__claims_runs_and_records_one_job(consumer: Consumer, tmp_path: Path) -> None:
    q = store_of(consumer)
    first = q.put_item({"do": "ok", "value": 1})
    second = q.put_item({"do": "fail"}, max_attempts=1)
    assert consumer.run_once()[0] == Step.RAN
    assert q.get_job(first).status == Status.PROCESSED and q.get_job(first).result["echo"] == 1
    assert q.get_job(second).status == Status.UNPROCESSED
    assert consumer.run_once()[0] == Step.RAN
    assert q.get_job(second).status == Status.MANUAL_INTERVENTION
    assert consumer.run_once()[0] == Step.IDLE


def test_run_once__idle_while_another_worker_holds_the_only_seat(consumer: Consumer) -> None:
    q = store_of(consumer)
    q.put_item({"do": "ok"})
    waiting = q.put_item({"do": "ok"})
    assert q.get_item("someone-else") is not None
    assert consumer.run_once()[0] == Step.IDLE
    assert q.get_job(waiting).attempts == 0
    assert not q.wait_for_work(0.2)  # a seat is not free: no wake-up, the consumer waits politely


def test_run_once__claims_nothing_once_a_stop_is_requested(consumer: Consumer) -> None:
    job_id = store_of(consumer).put_item({"do": "ok"})
    consumer.shutdown.request()
    assert consumer.run_once()[0] == Step.STOPPING
    assert store_of(consumer).get_job(job_id).status == Status.UNPROCESSED


def test_run_once__claim_next_records_and_claims_in_one_step_then_runs_the_chained_job(consumer: Consumer) -> None:
    q = store_of(consumer)
    first, second = q.put_item({"do": "ok", "value": 1}), q.put_item({"do": "ok", "value": 2})
    step, chained = consumer.run_once(claim_next=True)
    assert step == Step.RAN and chained is not None and chained.job.id == second
    assert q.get_job(first).status == Status.PROCESSED
    held = q.get_job(second)
    assert held.status == Status.UNDER_PROCESS and held.worker_id == consumer.worker_id
    step, chained = consumer.run_once(chained, claim_next=True)  # runs it without claiming again
    assert step == Step.RAN and chained is None
    done = q.get_job(second)
    assert done.status == Status.PROCESSED and done.attempts == 1 and done.result["echo"] == 2
    assert consumer.run_once(claim_next=True) == (Step.IDLE, None)


def test_run_once__claim_next_tells_the_outcome_once_the_chained_job_has_its_payload(
    consumer: Consumer, caplog: pytest.LogCaptureFixture
) -> None:
    """The log lines and the delivery wake-up of a chained outcome wait until the next job started."""
    q = store_of(consumer)
    told: list[str] = []
    consumer.on_final = lambda: told.append("on_final")
    first = q.put_item({"do": "ok"}, callback_url="http://127.0.0.1:9/hook")
    second = q.put_item({"do": "ok"})
    caplog.set_level(logging.INFO, logger="consumer")
    step, chained = consumer.run_once(claim_next=True)
    assert step == Step.RAN and q.get_job(second).status == Status.UNDER_PROCESS
    assert told == [] and f"event=finished job={first}" not in caplog.text
    assert consumer.run_once(chained, claim_next=True)[0] == Step.RAN
    lines = [record.getMessage() for record in caplog.records]
    position = {line.split()[0] + " " + line.split()[1]: n for n, line in enumerate(lines)}
    assert position[f"event=finished job={first}"] < position[f"event=claimed job={second}"]
    assert position[f"event=claimed job={second}"] < position[f"event=running job={second}"]
    assert told == ["on_final"]


def test_run_once__stop_after_a_claim_next_gives_the_chained_job_back_unspent(consumer: Consumer) -> None:
    q = store_of(consumer)
    q.put_item({"do": "ok"})
    second = q.put_item({"do": "ok"})
    step, chained = consumer.run_once(claim_next=True)
    assert step == Step.RAN and q.get_job(second).status == Status.UNDER_PROCESS
    consumer.shutdown.request()
    assert consumer.run_once(chained, claim_next=True) == (Step.STOPPING, None)
    back = q.get_job(second)
    assert back.status == Status.UNPROCESSED and back.attempts == 0


def test_run_once__stop_during_a_job_records_its_outcome_and_claims_nothing(consumer: Consumer) -> None:
    q = store_of(consumer)
    first = q.put_item({"do": "sleep", "seconds": 1.5})
    second = q.put_item({"do": "ok"})

    def stop_once_it_runs() -> None:  # while the first job runs (within its grace), however slow the machine
        wait_until(lambda: q.get_job(first).status == Status.UNDER_PROCESS, what="the first job to start")
        consumer.shutdown.request()

    stop = threading.Thread(target=stop_once_it_runs, daemon=True)
    stop.start()
    assert consumer.run_once(claim_next=True) == (Step.RAN, None)
    stop.join()
    assert q.get_job(first).status == Status.PROCESSED
    assert q.get_job(second).status == Status.UNPROCESSED and q.get_job(second).attempts == 0
    assert consumer.run_once(claim_next=True) == (Step.STOPPING, None)


def test_run_once__the_job_process_is_alone_in_its_group(consumer: Consumer) -> None:
    """No watchdog is forked per job (the helper watches over every job's group)."""
    job_id = store_of(consumer).put_item({"do": "group"})
    assert consumer.run_once()[0] == Step.RAN
    result = store_of(consumer).get_job(job_id).result
    assert result["members"] == [result["pid"]]


def test_run__drain_returns_when_nothing_is_claimable(consumer: Consumer) -> None:
    ids = [store_of(consumer).put_item({"do": "ok", "value": n}) for n in range(3)]
    consumer.run(drain=True)
    assert [store_of(consumer).get_job(i).status for i in ids] == [Status.PROCESSED] * 3
    assert consumer.jobs_run == 3


@pytest.mark.parametrize(
    ("algorithm", "message"),
    [
        ("tests.consumer.algos:no_such_function", "tests.consumer.algos has no function no_such_function"),
        ("tests.consumer.no_such_module:run", "importing tests.consumer.no_such_module failed"),
    ],
)
def test_helper__says_why_the_algorithm_cannot_be_loaded(algorithm: str, message: str) -> None:
    link = HelperLink(load_settings(algorithm=algorithm))
    link.start()
    try:
        with pytest.raises(AlgorithmUnavailable, match=message):
            link.wait_ready()
    finally:
        link.close()


def test_spares__fork_ahead_while_busy_and_trim_when_idle(consumer: Consumer) -> None:
    spares = consumer.spares
    spares.expect_back_to_back(True)
    assert spares.ensure(30)
    spares.fork_ahead()  # what a job's start does: fork up to the number wanted

    def both_ready() -> bool:
        spares.pump()
        return len(spares._spares) == 2 and all(spares._says_waiting(spare) and spare.ready for spare in spares._spares)

    wait_until(both_ready)
    first, second = spares._spares
    spares.expect_back_to_back(False)
    assert spares._spares == [first]
    assert spares.take() is first

    # the extra spare was killed and is dead before the next job is handed out: the helper said
    # it reaped it, or the kernel shows it dead (take does not wait for the helper's word)
    assert second.exited or not pid_alive(second.pid)
    spares.kill(first)
    spares.reap(first)
