"""A partner's cap on running jobs holds across consumers: three seats served by two `pq-consumer`
processes on PostgreSQL, A capped at one job at a time. Checked by sampling the database while
they run and from the ledger the algorithm writes."""

from __future__ import annotations

from pathlib import Path

import pytest

from pqueue import PersistentQ, Status
from tests.partners import ledger
from tests.programs import StartConsumer
from tests.support import wait_until

pytestmark = pytest.mark.timeout(240)


@pytest.fixture(params=[pytest.param("postgresql", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    """Several consumers on several seats: the PostgreSQL deployment."""
    return str(request.param)


def test_cap__two_consumers_three_seats_never_run_two_of_a_capped_partners_jobs(
    q: PersistentQ, tmp_path: Path, start_consumer: StartConsumer
) -> None:
    path = tmp_path / "ledger.jsonl"
    q.add_partner("a", max_running=1)
    q.add_partner("b")
    ledger.submit(q, path, "a", 0.1, 24, "a")  # A alone could fill every seat
    ledger.submit(q, path, "b", 0.4, 6, "b")
    q.set_seats("default", 3)

    for _ in range(2):
        start_consumer(PQ_MAX_RUNNING="3")
    most_running_a = 0

    def drained() -> bool:
        nonlocal most_running_a
        most_running_a = max(most_running_a, q.count_items(status=Status.UNDER_PROCESS, partner="a"))
        return q.count_items(status=[Status.UNPROCESSED, Status.UNDER_PROCESS]) == 0

    wait_until(drained, timeout=120, interval=0.01, what="every job to run")

    runs = ledger.read(path)
    assert len(runs) == 30
    assert most_running_a <= 1
    assert ledger.overlaps([run for run in runs if run.who == "a"]) == []
    assert ledger.overlaps(runs), "the two consumers did run side by side"


def test_control__without_the_cap_the_same_workload_runs_two_of_a_at_once(
    q: PersistentQ, tmp_path: Path, start_consumer: StartConsumer
) -> None:
    path = tmp_path / "ledger.jsonl"
    q.add_partner("a")
    ledger.submit(q, path, "a", 0.2, 12, "a")
    q.set_seats("default", 3)

    for _ in range(2):
        start_consumer(PQ_MAX_RUNNING="3")
    wait_until(lambda: len(ledger.read(path)) == 12, timeout=120, what="every job to run")

    assert ledger.overlaps(ledger.read(path))
