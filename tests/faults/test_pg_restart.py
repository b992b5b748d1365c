"""PostgreSQL shut down and started again under HTTP load, with jobs running: nothing acknowledged is lost.

A private cluster (initdb on a free port, never the machine's own server) holds the queue. A real
pq-producer takes jobs from HTTP clients posting without pause, and two pq-consumers (one seat)
run them. While a long job runs, the cluster is shut down, in "fast" mode (sessions ended
cleanly) and then in "immediate" mode (as a crash: no checkpoint, recovery at start), and kept
down until the intake has answered 503 and a consumer has logged that it cannot claim; then it
is started again. Every job a client got a 202 for must be stored and end processed, the intake
answers 503 quickly (not a 500, not a hang) while the database is down and 202 again within 30 s
after it is back, a consumer claims again within 30 s, and never do two runs overlap.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pqueue import PersistentQ, Status
from tests.faults.intake import start_producer
from tests.faults.ledger import overlaps, peak_concurrency, read_runs, runs_of
from tests.faults.load import HANG_SECONDS, HttpLoad, first_answer
from tests.faults.settings import LEASE_SECONDS
from tests.faults.stored import wait_finished
from tests.pg_cluster import PrivateCluster
from tests.postgres import require_postgres
from tests.programs import StartProgram, pid_alive
from tests.support import free_port, wait_until

pytestmark = [pytest.mark.process, pytest.mark.postgres, pytest.mark.timeout(170)]

RECOVERY_BOUND = 30.0  # seconds, the bound for the intake and the consumers
RENEWAL_FAILED, NOT_CLAIMING = "event=lease_renewal_failed", "event=database_unavailable"


@dataclass(frozen=True)
class Outage:
    """One shutdown of the cluster and how the programs came through it (monotonic seconds)."""

    mode: str
    down_at: float
    up_at: float
    first_503_after: float  # from the shutdown
    accepted_after: float  # from the start, until the first 202
    claimed_after: float  # from the start (or the long run's end, if later: one seat), until the next run
    long_job_cut: bool  # its run died with the lease it could not renew


@pytest.fixture
def cluster() -> Iterator[PrivateCluster]:
    require_postgres()  # the suite's PostgreSQL tests run together: skipped locally, required in CI
    private = PrivateCluster()
    private.start()
    yield private
    private.destroy()


@pytest.fixture
def db_env(cluster: PrivateCluster, tmp_path: Path) -> dict[str, str]:
    """The programs' database: a schema in the private cluster."""
    return {"PQ_HOME": str(tmp_path), "PQ_DATABASE_URL": cluster.url, "PQ_DB_SCHEMA": "faults"}


def test_postgres_restarted_under_http_load__acknowledged_jobs_processed_and_service_back(
    cluster: PrivateCluster, make_queue: Callable[..., PersistentQ], start_program: StartProgram, tmp_path: Path
) -> None:
    q = make_queue(lease_seconds=LEASE_SECONDS)
    ledger = tmp_path / "ledger.jsonl"
    port = free_port()
    start_producer(start_program, port)
    for _ in range(2):
        start_program("pq-consumer")
    outages = []
    with HttpLoad(f"http://127.0.0.1:{port}", lambda n: {"ledger": str(ledger), "tag": f"http-{n}"}, clients=2) as load:
        wait_until(lambda: load.acknowledged() and read_runs(ledger), timeout=60, what="jobs taken and run")
        for mode in ("fast", "immediate"):
            outages.append(outage(cluster, mode, q, load, ledger, tmp_path))
    answers = load.answers

    acknowledged = load.acknowledged()
    jobs = wait_finished(q, acknowledged, timeout=90)
    runs = read_runs(ledger)
    lost = sorted(i for i in acknowledged if i not in jobs or jobs[i].status != Status.PROCESSED)
    during = [a for o in outages for a in answers if o.down_at <= a.sent <= o.up_at]
    for o in outages:
        cut = "cut (lease not renewed) and run again" if o.long_job_cut else "not cut"
        print(
            f"figures: {o.mode} shutdown: intake answered 503 {o.first_503_after:.2f}s after it, "
            f"202 again {o.accepted_after:.2f}s after the start; a consumer claimed {o.claimed_after:.2f}s "
            f"after it; the running long job was {cut}"
        )
    print(
        f"figures: {len(answers)} requests, {len(acknowledged)} acknowledged, lost {len(lost)}; during the "
        f"outages {sorted({a.status for a in during}, key=str)}, slowest answer "
        f"{max(a.seconds for a in during):.2f}s; most runs at once {peak_concurrency(runs)}"
    )
    assert not lost, f"acknowledged but not processed: {lost[:20]}"
    assert {a.status for a in answers} <= {202, 503}, sorted({(a.status, a.error) for a in answers}, key=str)
    assert max(a.seconds for a in during) < HANG_SECONDS
    assert all(o.accepted_after < RECOVERY_BOUND and o.claimed_after < RECOVERY_BOUND for o in outages)
    assert peak_concurrency(runs) == 1, overlaps(runs)


def outage(cluster: PrivateCluster, mode: str, q: PersistentQ, load: HttpLoad, ledger: Path, tmp_path: Path) -> Outage:
    """Shut the cluster down while a long job runs, hold it down until the programs have seen
    it, start it again, and time how soon each works again."""
    tag = f"long-{mode}"
    q.put_item({"ledger": str(ledger), "tag": tag, "seconds": 5}, priority=-1)  # next in line
    wait_until(lambda: runs_of(read_runs(ledger), tag), timeout=60, what=f"{tag} to start")
    renewals_failed, not_claiming = (consumer_log_count(tmp_path, n) for n in (RENEWAL_FAILED, NOT_CLAIMING))
    down_at = time.monotonic()
    cluster.stop(mode)
    refused = wait_until(lambda: first_answer(load, 503, down_at), timeout=30, what="the intake to answer 503")
    wait_logged(tmp_path, NOT_CLAIMING, more_than=not_claiming)  # the idle consumer stopped claiming
    wait_until(  # the long job's renewal failed (or, on a machine so slow that it finished first, it is over)
        lambda: (
            consumer_log_count(tmp_path, RENEWAL_FAILED) > renewals_failed or runs_of(read_runs(ledger), tag)[0].ended
        ),
        timeout=30,
        what="the long job's lease renewal to fail",
    )
    cluster.start()
    up_at = time.monotonic()
    accepted = wait_until(lambda: first_answer(load, 202, up_at), timeout=RECOVERY_BOUND + 10, what="a 202")
    # The seat is free for another run once the database is back and the long job's run is over.
    wait_until(lambda: not pid_alive(runs_of(read_runs(ledger), tag)[0].pid), timeout=60, what=f"{tag} to end")
    long_run = runs_of(read_runs(ledger), tag)[0]  # read once its process is gone: all its lines are there
    seat_free_at = max(up_at, long_run.last)
    claimed = wait_until(
        lambda: [r for r in read_runs(ledger) if r.start > seat_free_at],
        timeout=RECOVERY_BOUND + 10,
        what="a new run",
    )
    return Outage(
        mode,
        down_at,
        up_at,
        refused.answered - down_at,
        accepted.answered - up_at,
        claimed[0].start - seat_free_at,
        long_job_cut=not long_run.ended,
    )


def wait_logged(tmp_path: Path, needle: str, more_than: int) -> None:
    """Wait until the consumers' logs say this more often than they did."""
    wait_until(lambda: consumer_log_count(tmp_path, needle) > more_than, timeout=30, what=f"a consumer to log {needle}")


def consumer_log_count(tmp_path: Path, needle: str) -> int:
    """How often the consumers' logs say this, all of them together."""
    return sum(path.read_text(errors="replace").count(needle) for path in tmp_path.glob("pq-consumer-*.log"))
