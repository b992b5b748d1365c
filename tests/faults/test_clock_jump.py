"""The database's clock jumps forward while a job runs: no consumer takes the job from its owner.

A jump (an NTP step on the database host, a restored virtual machine; on SQLite the host's own
clock) makes every running lease look expired by the database's clock. A consumer rescues a
lease only once it has also seen it go unrenewed for the lease plus its margin on its own
monotonic clock, which a wall-clock jump does not move, so the owner's heartbeats keep it.
The jump is the rescuing store's clock offset (how tests move the database's time).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from consumer.helper_link import HelperLink
from consumer.spares import Spares
from consumer.worker import Consumer, Step
from pqueue import PersistentQ, Settings, Status
from tests.faults.ledger import peak_concurrency, read_runs, runs_of
from tests.faults.settings import LEASE_SECONDS
from tests.programs import StartProgram
from tests.support import wait_until

pytestmark = [pytest.mark.process, pytest.mark.timeout(120)]
JUMP = timedelta(hours=1)


@pytest.fixture
def jumped_consumer(
    make_queue: Callable[..., PersistentQ], make_settings: Callable[..., Settings]
) -> Iterator[Consumer]:
    """A consumer in this process whose database clock reads an hour ahead."""
    overrides = {"algorithm": "tests.faults.ledger:run", "lease_seconds": LEASE_SECONDS, "retry_backoff_seconds": 0}
    settings = make_settings(**overrides)
    store = make_queue(**overrides)
    store.clock_offset = JUMP
    spares = Spares(HelperLink(settings))
    spares.link.start()
    spares.link.wait_ready()
    try:
        yield Consumer(store, settings, "jumped-clock", spares)
    finally:
        spares.close()


def test_database_clock_jumps_forward__running_job_stays_with_its_owner(
    make_queue: Callable[..., PersistentQ],
    start_program: StartProgram,
    jumped_consumer: Consumer,
    tmp_path: Path,
) -> None:
    q = make_queue(lease_seconds=LEASE_SECONDS)
    ledger = tmp_path / "ledger.jsonl"
    job_id = q.put_item({"ledger": str(ledger), "tag": "long", "seconds": 60})
    start_program("pq-consumer")
    wait_until(lambda: runs_of(read_runs(ledger), "long"), what="the owner to start the job")
    owner_lease = q.get_job(job_id).lease_id

    watched_until = time.monotonic() + 3 * LEASE_SECONDS  # well past lease + margin of silence
    while time.monotonic() < watched_until:
        assert jumped_consumer.run_once() == (Step.IDLE, None)  # the seat is the owner's: nothing rescued
        time.sleep(0.2)

    job = q.get_job(job_id)
    assert job.status == Status.UNDER_PROCESS and job.lease_id == owner_lease
    runs = read_runs(ledger)
    assert len(runs) == 1 and peak_concurrency(runs) == 1
    # The jump was real: the database clock alone calls the lease expired. PostgreSQL's rescue
    # skips a row another transaction holds locked, as the owner's renewal may at that moment
    # (it did once in CI): ask again.
    rescued = wait_until(
        lambda: [moved for moved, _ in jumped_consumer.store.rescue_expired(actor="test")],
        timeout=10,
        what="the jumped clock's rescue of the owner's lease",
    )
    assert rescued == [job_id]
