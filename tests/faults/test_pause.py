"""A consumer stopped (SIGSTOP, Ctrl-Z, a swap stall) while its job runs: the licence holds.

The job process and the helper live in sessions of their own, so stopping the consumer does not
stop its algorithm. The helper enforces the kill deadline that the consumer last renewed, so
the algorithm dies at the lease's end less its margin, before rescue hands the job to a
successor. When the whole tree is stopped and resumed past the lease, the resumed run lives
only until the helper (resumed with it) kills it: a few milliseconds, measured here.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from pqueue import PersistentQ, Status
from tests.faults.ledger import Run, overlaps, peak_concurrency, read_runs, runs_of
from tests.faults.pausing import signal_all, stop_outside_a_write
from tests.faults.settings import LEASE_SECONDS
from tests.programs import CLAIM_AHEAD, StartProgram, marked_processes, pid_alive
from tests.support import wait_status, wait_until

pytestmark = [pytest.mark.process, pytest.mark.timeout(150)]


def first_runs(ledger: Path, tag: str, count: int, timeout: float = 60.0) -> list[Run]:
    """Wait until the job has started `count` times; its runs."""

    def found() -> list[Run]:
        runs = runs_of(read_runs(ledger), tag)
        return runs if len(runs) >= count else []

    return wait_until(found, timeout=timeout, what=f"{count} run(s) of {tag}")


def put_long_job(q: PersistentQ, ledger: Path, rerun_seconds: float) -> int:
    """A job that would run a minute on its first try, and `rerun_seconds` on the next."""
    return q.put_item({"ledger": str(ledger), "tag": "long", "seconds": 60, "rerun_seconds": rerun_seconds})


def test_consumer_paused__helper_kills_the_job_before_the_successor_starts_it(
    make_queue: Callable[..., PersistentQ], start_program: StartProgram, tmp_path: Path, db_env: dict[str, str]
) -> None:
    q = make_queue(lease_seconds=LEASE_SECONDS)
    ledger = tmp_path / "ledger.jsonl"
    long_id = put_long_job(q, ledger, rerun_seconds=0.2)
    next_id = q.put_item({"ledger": str(ledger), "tag": "next", "seconds": 0.2})
    paused = start_program("pq-consumer")
    first = first_runs(ledger, "long", 1)[0]

    stop_outside_a_write([paused.pid], db_env)  # the consumer alone: its helper and job process run on
    stopped_at = time.monotonic()
    wait_until(lambda: not pid_alive(first.pid), timeout=LEASE_SECONDS + 5, what="the paused consumer's job to die")
    killed_after = time.monotonic() - stopped_at
    successor = start_program("pq-consumer")
    wait_status(q, long_id, Status.PROCESSED, timeout=60)
    wait_status(q, next_id, Status.PROCESSED, timeout=60)

    runs = read_runs(ledger)
    killed = runs_of(runs, "long")[0]
    rerun = runs_of(runs, "long")[1]
    gap = rerun.start - killed.last
    print(
        f"figures: paused consumer's job killed {killed.seconds:.3f}s after it started ({LEASE_SECONDS}s lease); "
        f"successor started it {gap:.3f}s later"
    )
    assert peak_concurrency(runs) == 1, overlaps(runs)
    assert not killed.ended and killed.seconds < LEASE_SECONDS  # dead before its lease ran out
    assert killed_after < LEASE_SECONDS + 5
    job = q.get_job(long_id)
    assert job.attempts == 2 and job.worker_id is not None

    os.kill(paused.pid, signal.SIGCONT)  # resumed: it records nothing over the successor's outcome
    wait_until(lambda: "killed_at_deadline" in log_of(tmp_path, 0), timeout=60, what="the resumed consumer's log")
    assert q.get_job(long_id).status == Status.PROCESSED
    assert paused.poll() is None and successor.poll() is None


def test_consumer_tree_paused_past_its_lease__resumed_run_dies_within_milliseconds(
    make_queue: Callable[..., PersistentQ],
    start_program: StartProgram,
    tmp_path: Path,
    run_marker: str,
    db_env: dict[str, str],
) -> None:
    q = make_queue(lease_seconds=LEASE_SECONDS)
    ledger = tmp_path / "ledger.jsonl"
    long_id = put_long_job(q, ledger, rerun_seconds=6)
    start_program("pq-consumer")
    first = first_runs(ledger, "long", 1)[0]

    tree = marked_processes(run_marker)  # consumer, helper, job process and its spare
    assert first.pid in tree
    stop_outside_a_write(tree, db_env)
    start_program("pq-consumer")
    second = first_runs(ledger, "long", 2)[1]  # the successor's run, after rescue: 6 s of work
    resumed_at = time.monotonic()
    signal_all(tree, signal.SIGCONT)
    wait_until(lambda: not pid_alive(first.pid), timeout=10, what="the resumed job process to die")
    wait_status(q, long_id, Status.PROCESSED, timeout=60)

    killed = runs_of(read_runs(ledger), "long")[0]
    assert killed.pid == first.pid and not killed.ended
    overlap = max(0.0, killed.last - second.start)
    lived = max(0.0, killed.last - resumed_at)
    print(f"figures: resumed run lived {lived * 1000:.1f} ms after SIGCONT; overlap {overlap * 1000:.1f} ms")
    # Both resume together; the helper's poll has long expired, so it kills before its next look.
    assert overlap < 0.5, f"the resumed run overlapped the successor's by {overlap * 1000:.0f} ms"
    assert q.get_job(long_id).attempts == 2


def log_of(tmp_path: Path, index: int) -> str:
    """The log of the index-th consumer the test started."""
    path = tmp_path / f"pq-consumer-{index}.log"
    return path.read_text(errors="replace") if path.exists() else ""


def test_helper_paused__consumer_finishes_the_jobs_then_replaces_the_helper(
    make_queue: Callable[..., PersistentQ], start_program: StartProgram, tmp_path: Path
) -> None:
    q = make_queue(lease_seconds=LEASE_SECONDS)
    ledger = tmp_path / "ledger.jsonl"
    ahead = CLAIM_AHEAD
    # Claiming ahead, the consumer keeps two spares besides the held job's process: more jobs than
    # processes, so that one of them needs a fork whichever spare each of the others takes.
    later = ["on-a-second-spare", "on-a-third-spare", "needs-a-fork"] if ahead else ["needs-a-fork"]
    tags = ["first", "on-the-spare", *later]
    ids = [q.put_item({"ledger": str(ledger), "tag": tag, "seconds": 2 if tag == "first" else 0.2}) for tag in tags]
    start_program("pq-consumer")
    first_runs(ledger, "first", 1)
    helper = int(log_of(tmp_path, 0).split("event=algorithm_ready", 1)[1].split(" pid=", 1)[1].split()[0])
    # The spares are forked once the first job has its payload (and its hold is made): on a loaded
    # machine that can come after the first run's first line, and a helper stopped before leaves none.
    processes = 4 if ahead else 2  # the running job's, the held one's and two spares; or one spare
    forked = psutil.Process(helper).children
    wait_until(lambda: len(forked()) >= processes, what="the helper's spares beside the running job")
    if ahead:
        wait_until(lambda: "event=held " in log_of(tmp_path, 0), what="the second job held")
    time.sleep(0.1)  # the helper's word of the forks reaches the consumer

    os.kill(helper, signal.SIGSTOP)  # the fork server alone: the running job and the ready spare go on
    wait_status(q, ids[0], Status.PROCESSED, timeout=30)
    # Claiming ahead, the second job was held in the spare, and only the helper starts a held job:
    # it may wait, unspent, for the helper's replacement like the last.
    wait_status(q, ids[1], Status.PROCESSED, timeout=90 if ahead else 30)
    for job_id in ids[2:]:
        wait_status(q, job_id, Status.PROCESSED, timeout=90)  # the last once the consumer gave up on the helper

    assert "event=helper_unresponsive" in log_of(tmp_path, 0)
    assert not pid_alive(helper)
    runs = read_runs(ledger)
    assert peak_concurrency(runs) == 1 and [r.tag for r in runs] == tags
    assert all(q.get_job(job_id).attempts == 1 for job_id in ids)
