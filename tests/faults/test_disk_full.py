"""The SQLite database's disk fills up while jobs come in and run: clear refusals, nothing lost.

The database lives on a small tmpfs of its own; the logs and the run ledger do not. While
clients post jobs over HTTP and a consumer runs them (a long one among them), a file takes every
byte left on the disk. The intake must refuse new jobs with a clear answer (507, never a 500,
and without dying), every job it acknowledged must stay stored, the consumer must neither run
two jobs at once nor exit, and `pq` must say in one line why it cannot write. Once the file is
removed, the intake answers 202 and the consumer claims again within 30 s, every acknowledged
job ends processed, and the database is intact.
"""

from __future__ import annotations

import contextlib
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pqueue import PersistentQ, Status
from tests.faults.intake import start_producer
from tests.faults.ledger import overlaps, peak_concurrency, read_runs, runs_of
from tests.faults.load import HANG_SECONDS, HttpLoad, first_answer
from tests.faults.settings import LEASE_SECONDS
from tests.faults.small_disk import fill, free_bytes, mounted_tmpfs
from tests.faults.stored import wait_finished
from tests.programs import StartProgram
from tests.support import BIN, free_port, wait_until

pytestmark = [pytest.mark.process, pytest.mark.timeout(150)]

RECOVERY_BOUND = 30.0
FULL_ANSWERS = {503, 507}  # 507 names the full disk; 503 for a moment the database was also busy


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    with mounted_tmpfs(tmp_path / "disk", "16m") as mounted:
        yield mounted


@pytest.fixture
def db_env(disk: Path, tmp_path: Path) -> dict[str, str]:
    """The programs' database: a SQLite file on the small disk."""
    return {"PQ_HOME": str(tmp_path), "PQ_DATABASE_URL": f"sqlite:///{disk / 'pqueue.db'}"}


def test_sqlite_disk_full__intake_refuses_clearly_and_all_recover_when_space_returns(
    disk: Path,
    db_env: dict[str, str],
    make_queue: Callable[..., PersistentQ],
    start_program: StartProgram,
    tmp_path: Path,
) -> None:
    q = make_queue(lease_seconds=LEASE_SECONDS)
    ledger = tmp_path / "ledger.jsonl"
    port = free_port()
    producer = start_producer(start_program, port)
    consumer = start_program("pq-consumer")
    payload = {"ledger": str(ledger), "seconds": 0.05}
    with HttpLoad(f"http://127.0.0.1:{port}", lambda n: {**payload, "tag": f"http-{n}"}, clients=2, pause=0.02) as load:
        wait_until(lambda: load.acknowledged() and read_runs(ledger), timeout=60, what="jobs taken and run")
        q.put_item({"ledger": str(ledger), "tag": "long", "seconds": 6}, priority=-1)
        wait_until(lambda: runs_of(read_runs(ledger), "long"), timeout=60, what="the long job to start")

        filled_at = time.monotonic()
        filler = fill(disk)
        refused = wait_until(
            lambda: next((a for a in load.since(filled_at) if a.status == 507), None),
            timeout=60,
            what="the intake to refuse jobs on the full disk",
        )
        wait_until(lambda: "disk is full" in consumer_log(tmp_path), timeout=60, what="the consumer to see it")
        enqueue = pq(db_env, "enqueue", '{"from": "pq"}')
        stats = pq(db_env, "stats")
        left = free_bytes(disk)

        filler.unlink()
        freed_at = time.monotonic()
        accepted = wait_until(lambda: first_answer(load, 202, freed_at), timeout=RECOVERY_BOUND + 10, what="a 202")
        claimed = wait_until(
            lambda: [r for r in read_runs(ledger) if r.start > freed_at], timeout=RECOVERY_BOUND + 10, what="a run"
        )
    answers = load.answers

    acknowledged = load.acknowledged()
    jobs = wait_finished(q, acknowledged, timeout=90)
    long_id = next(job.id for job in jobs.values() if job.payload["tag"] == "long")
    long_job = wait_finished(q, [long_id], timeout=60)[long_id]
    runs = read_runs(ledger)
    full = [a for a in answers if filled_at <= a.sent <= freed_at]
    lost = sorted(i for i in acknowledged if jobs[i].status != Status.PROCESSED)
    refusals = sum(a.status == 507 for a in full)
    log_lines = producer_log(tmp_path).count("answered 507")
    print(
        f"figures: disk full ({left} bytes left): intake refused {refused.answered - filled_at:.2f}s after the fill "
        f"with {refused.status}, answers while full {sorted({a.status for a in full}, key=str)}; after freeing, "
        f"202 in {accepted.answered - freed_at:.2f}s and a new run in {claimed[0].start - freed_at:.2f}s; "
        f"{len(acknowledged)} acknowledged, lost {len(lost)}; long job runs {len(runs_of(runs, 'long'))}; "
        f"most runs at once {peak_concurrency(runs)}; {refusals} refusals logged in {log_lines} lines; "
        f"pq enqueue said {enqueue.stderr.strip()!r}"
    )
    assert {a.status for a in answers} <= {202} | FULL_ANSWERS, sorted({(a.status, a.error) for a in answers}, key=str)
    assert max(a.seconds for a in full) < HANG_SECONDS
    assert "no space left on its disk" in str(refused.error), refused
    assert producer.poll() is None and consumer.poll() is None  # neither died nor was restarted
    assert log_lines <= 2 + (freed_at - filled_at) / 10  # one line per outage and 10 s, not one per request
    assert not lost, f"acknowledged but not processed: {lost[:20]}"
    assert long_job.status == Status.PROCESSED
    assert peak_concurrency(runs) == 1, overlaps(runs)
    assert enqueue.returncode == 1 and len(enqueue.stderr.strip().splitlines()) == 1, enqueue
    assert "disk is full" in enqueue.stderr and "Traceback" not in enqueue.stderr
    assert stats.returncode == 0, stats  # reading needs no space
    assert accepted.answered - freed_at < RECOVERY_BOUND and claimed[0].start - freed_at < RECOVERY_BOUND
    with contextlib.closing(sqlite3.connect(disk / "pqueue.db")) as check:
        assert check.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def pq(db_env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """Run the admin CLI on the test database."""
    env = {"PATH": str(BIN), **db_env}
    return subprocess.run([str(BIN / "pq"), *args], env=env, capture_output=True, text=True, timeout=60, check=False)


def consumer_log(tmp_path: Path) -> str:
    return "".join(path.read_text(errors="replace") for path in tmp_path.glob("pq-consumer-*.log"))


def producer_log(tmp_path: Path) -> str:
    return "".join(path.read_text(errors="replace") for path in tmp_path.glob("pq-producer-*.log"))
