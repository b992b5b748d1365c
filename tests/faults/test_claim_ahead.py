"""Claiming ahead (PQ_CLAIM_AHEAD=1) under faults at each step of the seat's hand-off, with real
pq-consumer processes and the run ledger: the consumer killed with SIGKILL while a job is held,
stopped while held (resumed before and after its lease ran out), its helper killed, and the
database cut or black-holed at the running job's end; with the held job's start gate armed (it
starts by itself when the running job's process ends): the helper stopped, the held job's
process stopped, the running job's process killed with SIGKILL, and a stop requested while the
held job has just begun (the consumer stopped across the hand-off).

After each: never two runs at once on the one seat (the ledger), every job processed, and a job
held that never started, or whose start the database never recorded, spent no attempt. The
database's view may trail a held job's start by at most what was left of the running job's
lease (docs/architecture.md, "The seat's hand-off"): the held run is killed by then if its
start is not recorded, and a recorded start is stamped within that bound of the real one.
"""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

import pytest

from pqueue import PersistentQ, Status, lease_margin
from tests.faults.blackhole import NetworkProxy
from tests.faults.ledger import Run, overlaps, peak_concurrency, read_runs, runs_of
from tests.faults.pausing import signal_all, stop_outside_a_write
from tests.faults.settings import LEASE_SECONDS
from tests.programs import Process, StartProgram, marked_processes, pid_alive
from tests.support import wait_status, wait_until

pytestmark = [pytest.mark.process, pytest.mark.timeout(150)]

AHEAD = {"PQ_CLAIM_AHEAD": "1"}
# The longest the database's view may trail a held job's real start: the running job's lease
# less its margin (the held process's kill deadline until its own start is committed).
TRAIL_BOUND = LEASE_SECONDS - lease_margin(LEASE_SECONDS)


def log_of(tmp_path: Path, index: int = 0) -> str:
    path = tmp_path / f"pq-consumer-{index}.log"
    return path.read_text(errors="replace") if path.exists() else ""


def wait_held(tmp_path: Path, job_id: int, index: int = 0) -> None:
    """Wait until the consumer says it holds the job (its payload waits in a spare, held)."""
    wait_until(lambda: f"event=held job={job_id} " in log_of(tmp_path, index), timeout=60, what=f"job {job_id} held")


def hold_ended(tmp_path: Path, index: int = 0) -> bool:
    """Whether the consumer let a hold go: dropped before the held job began, or its run cut
    short unrecorded (it began, and its start could not be written)."""
    log = log_of(tmp_path, index)
    return "event=hold_dropped" in log or "event=held_run_unrecorded" in log


def held_pid(tmp_path: Path, job_id: int, index: int = 0) -> int:
    found = re.search(rf"event=held job={job_id} .*?pid=(\d+)", log_of(tmp_path, index))
    assert found is not None
    return int(found.group(1))


def helper_pid(tmp_path: Path, index: int = 0) -> int:
    found = re.search(r"event=algorithm_ready .*?pid=(\d+)", log_of(tmp_path, index))
    assert found is not None
    return int(found.group(1))


def wait_runs(ledger: Path, tag: str, count: int, timeout: float = 60.0) -> list[Run]:
    def found() -> list[Run]:
        runs = runs_of(read_runs(ledger), tag)
        return runs if len(runs) >= count else []

    return wait_until(found, timeout=timeout, what=f"{count} run(s) of {tag}")


def put(q: PersistentQ, ledger: Path, tag: str, seconds: float, rerun_seconds: float | None = None) -> int:
    payload: dict[str, object] = {"ledger": str(ledger), "tag": tag, "seconds": seconds}
    if rerun_seconds is not None:
        payload["rerun_seconds"] = rerun_seconds
    return q.put_item(payload)


class HeldPair(NamedTuple):
    q: PersistentQ
    ledger: Path
    running: int
    held: int
    consumer: Process
    first: Run  # the running job's run


def long_run_with_one_held(
    make_queue: Callable[..., PersistentQ], start_program: StartProgram, tmp_path: Path, held_seconds: float = 0.3
) -> HeldPair:
    """A consumer claiming ahead runs a 60 s job (0.3 s when run again) with a job of
    `held_seconds` held behind it."""
    q = make_queue(lease_seconds=LEASE_SECONDS)
    ledger = tmp_path / "ledger.jsonl"
    running = put(q, ledger, "running", 60, rerun_seconds=0.3)
    held = put(q, ledger, "held", held_seconds)
    consumer = start_program("pq-consumer", **AHEAD)
    wait_held(tmp_path, held)
    return HeldPair(q, ledger, running, held, consumer, wait_runs(ledger, "running", 1)[0])


def wall(monotonic: float) -> float:
    """A moment of the machine's monotonic clock (the ledger's) on the wall clock (the database's)."""
    return monotonic + (time.time() - time.monotonic())


def test_consumer_killed_while_a_job_is_held__the_held_job_never_ran_and_spends_no_attempt(
    make_queue: Callable[..., PersistentQ], start_program: StartProgram, tmp_path: Path
) -> None:
    q, ledger, running, held, killed, first = long_run_with_one_held(make_queue, start_program, tmp_path)

    os.kill(killed.pid, signal.SIGKILL)  # the consumer alone: its helper kills its job processes
    killed.wait(10)
    wait_until(lambda: not pid_alive(first.pid), timeout=10, what="the killed consumer's job to die")
    assert (q.get_job(held).status, q.get_job(held).attempts) == (Status.UNPROCESSED, 0)
    start_program("pq-consumer", **AHEAD)
    wait_status(q, running, Status.PROCESSED, timeout=60)
    wait_status(q, held, Status.PROCESSED, timeout=60)

    runs = read_runs(ledger)
    assert peak_concurrency(runs) == 1, overlaps(runs)
    assert len(runs_of(runs, "held")) == 1 and runs_of(runs, "held")[0].start > first.last
    assert q.get_job(held).attempts == 1  # the hold spent nothing
    assert q.get_job(running).attempts == 2  # its lease was rescued, its run counted


@pytest.mark.parametrize("pause", ["within_the_lease", "past_the_lease"])
def test_consumer_stopped_while_a_job_is_held__never_two_runs_and_the_database_trails_within_the_bound(
    pause: str,
    make_queue: Callable[..., PersistentQ],
    start_program: StartProgram,
    tmp_path: Path,
    db_env: dict[str, str],
) -> None:
    """The running job ends while its consumer is stopped: the helper starts the held job on its
    own. Resumed within the lease, the consumer records the outcome with the held job's start;
    stopped past it, the held run is killed at the running job's deadline unrecorded, a successor
    runs both jobs, and the held job's attempt is not spent."""
    q = make_queue(lease_seconds=LEASE_SECONDS)
    ledger = tmp_path / "ledger.jsonl"
    running = put(q, ledger, "running", 1.0)
    held = put(q, ledger, "held", 1.0 if pause == "within_the_lease" else 60, rerun_seconds=0.3)
    paused = start_program("pq-consumer", **AHEAD)
    wait_held(tmp_path, held)
    stop_outside_a_write([paused.pid], db_env)
    stopped_at = time.monotonic()
    held_run = wait_runs(ledger, "held", 1)[0]  # started by the helper while the consumer is stopped
    running_run = runs_of(read_runs(ledger), "running")[0]
    assert held_run.start >= running_run.last
    assert (q.get_job(held).status, q.get_job(held).attempts) == (Status.UNPROCESSED, 0)  # the view trails

    if pause == "within_the_lease":
        time.sleep(max(0.0, 0.5 - (time.monotonic() - stopped_at)))  # the schedule of the fault itself
        os.kill(paused.pid, signal.SIGCONT)
        wait_status(q, held, Status.PROCESSED, timeout=60)
        job = q.get_job(held)
        assert job.started_at is not None
        trail = job.started_at.timestamp() - wall(held_run.start)
        print(f"figures: the database stamped the held job's start {trail * 1000:.1f} ms after it started")
        assert trail <= TRAIL_BOUND
        runs = read_runs(ledger)
        assert len(runs_of(runs, "held")) == 1 and job.attempts == 1
    else:
        wait_until(lambda: not pid_alive(held_run.pid), timeout=LEASE_SECONDS + 5, what="the held run to die")
        cut = runs_of(read_runs(ledger), "held")[0]
        assert not cut.ended and cut.last - running_run.start < TRAIL_BOUND + 0.5  # killed at N's deadline
        start_program("pq-consumer", **AHEAD)  # another host: rescues the running job's lease
        wait_status(q, running, Status.PROCESSED, timeout=60)
        wait_status(q, held, Status.PROCESSED, timeout=60)
        signal_all([paused.pid], signal.SIGCONT)
        wait_until(lambda: hold_ended(tmp_path, 0), timeout=30, what="the resumed consumer")
        runs = read_runs(ledger)
        assert q.get_job(held).attempts == 1, "the unrecorded held run spent an attempt"
        assert len(runs_of(runs, "held")) == 2 and runs_of(runs, "held")[1].ended
        assert q.get_job(running).status == Status.PROCESSED
    assert peak_concurrency(runs) == 1, overlaps(runs)


def test_stop_requested_while_a_job_is_held__the_held_job_is_killed_first_and_waits_unspent(
    make_queue: Callable[..., PersistentQ], start_program: StartProgram, tmp_path: Path
) -> None:
    q = make_queue(lease_seconds=LEASE_SECONDS)
    ledger = tmp_path / "ledger.jsonl"
    running = put(q, ledger, "running", 1.5)
    held = put(q, ledger, "held", 0.3)
    consumer = start_program("pq-consumer", **AHEAD)
    wait_held(tmp_path, held)

    consumer.send_signal(signal.SIGTERM)  # the running job finishes within its grace; nothing more starts
    assert consumer.wait(30) == 0
    assert q.get_job(running).status == Status.PROCESSED
    assert (q.get_job(held).status, q.get_job(held).attempts) == (Status.UNPROCESSED, 0)
    assert runs_of(read_runs(ledger), "held") == []
    log = log_of(tmp_path)
    assert log.index("event=hold_dropped") < log.index("event=shutdown_requested") < log.index("event=finished")


def test_whole_tree_stopped_while_a_job_is_held__resumed_past_the_lease_the_held_job_never_starts(
    make_queue: Callable[..., PersistentQ],
    start_program: StartProgram,
    tmp_path: Path,
    run_marker: str,
    db_env: dict[str, str],
) -> None:
    """Consumer, helper and job processes stopped together while N runs with N+1 held; a successor
    runs both. Resumed, the helper kills N at its passed deadline and keeps N+1's gate shut."""
    q, ledger, running, held, _consumer, first = long_run_with_one_held(make_queue, start_program, tmp_path)

    tree = marked_processes(run_marker)  # consumer, helper, the running job, the held one, a spare
    stop_outside_a_write(tree, db_env)
    start_program("pq-consumer", **AHEAD)
    wait_status(q, running, Status.PROCESSED, timeout=60)
    wait_status(q, held, Status.PROCESSED, timeout=60)
    resumed_at = time.monotonic()
    signal_all(tree, signal.SIGCONT)
    wait_until(lambda: not pid_alive(first.pid), timeout=10, what="the resumed job process to die")
    wait_until(lambda: "event=hold_dropped" in log_of(tmp_path, 0), timeout=30, what="the resumed consumer")

    runs = read_runs(ledger)
    stopped = runs_of(runs, "running")[0]
    lived = max(0.0, stopped.last - resumed_at)
    print(f"figures: the resumed run lived {lived * 1000:.1f} ms after SIGCONT; the held job never started")
    assert stopped.pid == first.pid and not stopped.ended
    assert lived < 0.5  # the resumed run lives only until the helper's first look
    assert len(runs_of(runs, "held")) == 1 and runs_of(runs, "held")[0].ended  # the successor's run alone
    assert q.get_job(held).attempts == 1 and q.get_job(running).attempts == 2


def test_helper_killed_while_a_job_is_held__the_held_job_never_ran_and_spends_no_attempt(
    make_queue: Callable[..., PersistentQ], start_program: StartProgram, tmp_path: Path
) -> None:
    q, ledger, running, held, consumer, first = long_run_with_one_held(make_queue, start_program, tmp_path)

    os.kill(helper_pid(tmp_path), signal.SIGKILL)  # its job processes die with it (parent-death signal)
    wait_status(q, running, Status.PROCESSED, timeout=60)
    wait_status(q, held, Status.PROCESSED, timeout=60)

    runs = read_runs(ledger)
    assert peak_concurrency(runs) == 1, overlaps(runs)
    assert not runs_of(runs, "running")[0].ended and runs_of(runs, "running")[0].pid == first.pid
    assert len(runs_of(runs, "held")) == 1 and q.get_job(held).attempts == 1
    assert q.get_job(running).attempts == 2  # its run died with the helper: a failed attempt, retried
    assert "event=hold_dropped" in log_of(tmp_path) and consumer.poll() is None


@pytest.fixture
def proxy(db_env: dict[str, str]) -> Iterator[NetworkProxy]:
    forwarder = NetworkProxy.to_url(db_env["PQ_DATABASE_URL"])
    yield forwarder
    forwarder.close()


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgresql"])
@pytest.mark.parametrize("fault", ["black_hole", "cut"])
def test_database_lost_at_the_running_job_s_end__held_run_killed_by_its_deadline_unrecorded_and_unspent(
    fault: str,
    proxy: NetworkProxy,
    make_queue: Callable[..., PersistentQ],
    start_program: StartProgram,
    db_env: dict[str, str],
    tmp_path: Path,
) -> None:
    """The database goes while job N runs with N+1 held: N ends, the helper starts N+1, and the
    transaction that would record its start cannot be written. The held run dies by N's kill
    deadline at the latest (the bound the database's view may trail a start); once the database
    is back, N's outcome is recorded and N+1 runs again, its attempt unspent."""
    q = make_queue(lease_seconds=LEASE_SECONDS)
    ledger = tmp_path / "ledger.jsonl"
    running = put(q, ledger, "running", 1.0)
    held = put(q, ledger, "held", 60, rerun_seconds=0.3)
    start_program("pq-consumer", PQ_DATABASE_URL=proxy.url_through(db_env["PQ_DATABASE_URL"]), **AHEAD)
    wait_held(tmp_path, held)
    proxy.black_hole() if fault == "black_hole" else proxy.cut()
    # A black hole holds the start's transaction until the call's deadline, and the held run
    # meanwhile; a cut fails it at once, and the held run may be killed before its first line.
    wait_until(lambda: hold_ended(tmp_path), timeout=LEASE_SECONDS + 10, what="the hold dropped")
    assert (q.get_job(held).status, q.get_job(held).attempts) == (Status.UNPROCESSED, 0)
    proxy.heal()
    # The consumer reconnects on its backoff (up to tens of seconds after a long outage), then N's
    # lease is rescued and N+1 claimed: about 50 s on a quiet machine, longer on a loaded one.
    wait_status(q, running, Status.PROCESSED, Status.CRASHED, timeout=120)
    wait_status(q, held, Status.PROCESSED, timeout=120)

    runs = read_runs(ledger)
    *cut, rerun = runs_of(runs, "held")
    n = runs_of(runs, "running")[0]
    lived = cut[0].seconds if cut else 0.0
    print(f"figures ({fault}): the held run lived {lived:.2f}s unrecorded ({TRAIL_BOUND:g}s bound)")
    assert peak_concurrency(runs) == 1, overlaps(runs)
    assert len(cut) <= 1 and all(not c.ended and c.last - n.start < TRAIL_BOUND + 0.5 for c in cut)
    if fault == "black_hole":
        assert cut, "the held run started while its start could not be recorded"
    assert rerun.ended and q.get_job(held).attempts == 1


@pytest.mark.parametrize("leave", ["child", "thread"])
def test_running_job_returns_leaving_a_writer__the_held_job_never_runs_beside_it(
    make_queue: Callable[..., PersistentQ], start_program: StartProgram, tmp_path: Path, leave: str
) -> None:
    """N's algorithm returns while what it started keeps appending to the ledger: a process
    forked into its group, or a non-daemon thread. N says done once its answer is sent, the
    helper kills N's whole group and only then opens N+1's gate: N+1's run starts after the
    writer's last line, though the writer was still writing after N's own end."""
    q = make_queue(lease_seconds=LEASE_SECONDS)
    ledger = tmp_path / "ledger.jsonl"
    q.put_item({"ledger": str(ledger), "tag": "running", "seconds": 0.5, "leave": leave})
    held = put(q, ledger, "held", 0.3)
    start_program("pq-consumer", **AHEAD)
    wait_held(tmp_path, held)
    wait_status(q, held, Status.PROCESSED, timeout=30)
    runs = read_runs(ledger)
    (n,), (left,), (n1,) = runs_of(runs, "running"), runs_of(runs, "running:left"), runs_of(runs, "held")
    assert n.ended and n1.ended
    assert left.last > n.last, "the writer stopped before its run ended: nothing was left running"
    assert n1.start >= left.last, overlaps(runs)
    assert not pid_alive(left.pid) or leave == "thread"
    assert "event=started_held job=" in log_of(tmp_path)


def test_helper_stopped_with_the_gate_armed__the_held_job_starts_on_its_own_and_is_recorded(
    make_queue: Callable[..., PersistentQ], start_program: StartProgram, tmp_path: Path
) -> None:
    """The helper is stopped while N runs with N+1's gate armed: N+1 starts when N's process
    ends, learnt from the kernel (no helper on the way), never beside N, and its start is
    recorded with N's outcome (S's own word that it began, not the helper's)."""
    q = make_queue(lease_seconds=LEASE_SECONDS)
    ledger = tmp_path / "ledger.jsonl"
    running = put(q, ledger, "running", 1.5)
    held = put(q, ledger, "held", 0.5)
    start_program("pq-consumer", **AHEAD)
    wait_held(tmp_path, held)
    time.sleep(0.2)  # the gate armed
    helper = helper_pid(tmp_path)
    os.kill(helper, signal.SIGSTOP)
    try:
        wait_status(q, held, Status.PROCESSED, timeout=30)
    finally:
        os.kill(helper, signal.SIGCONT)
    runs = read_runs(ledger)
    assert peak_concurrency(runs) == 1, overlaps(runs)
    (n,), (n1,) = runs_of(runs, "running"), runs_of(runs, "held")
    assert n.ended and n1.ended and n1.start >= n.last
    assert q.get_job(running).status == Status.PROCESSED
    assert q.get_job(held).attempts == 1 and q.get_job(running).attempts == 1
    assert "event=started_held job=" in log_of(tmp_path)


def test_held_job_process_stopped_with_the_gate_armed__dropped_unstarted_and_run_later_unspent(
    make_queue: Callable[..., PersistentQ], start_program: StartProgram, tmp_path: Path
) -> None:
    """S is stopped (SIGSTOP) while N runs: when N ends it cannot begin; the consumer waits for
    its word, kills it, and, S gone without a word, records N alone; N+1 runs later, its
    attempt unspent by the hold."""
    q = make_queue(lease_seconds=LEASE_SECONDS)
    ledger = tmp_path / "ledger.jsonl"
    running = put(q, ledger, "running", 1.0)
    held = put(q, ledger, "held", 0.3)
    start_program("pq-consumer", **AHEAD)
    wait_held(tmp_path, held)
    spare = held_pid(tmp_path, held)
    os.kill(spare, signal.SIGSTOP)
    wait_status(q, running, Status.PROCESSED, timeout=30)
    wait_status(q, held, Status.PROCESSED, timeout=30)
    assert not pid_alive(spare)
    runs = read_runs(ledger)
    assert peak_concurrency(runs) == 1, overlaps(runs)
    (n1,) = runs_of(runs, "held")
    assert n1.pid != spare and n1.ended
    assert q.get_job(held).attempts == 1
    assert "event=hold_dropped" in log_of(tmp_path)


def test_running_job_process_killed_with_the_gate_armed__the_held_job_starts_after_it_and_both_are_recorded(
    make_queue: Callable[..., PersistentQ], start_program: StartProgram, tmp_path: Path
) -> None:
    """N's process is killed with SIGKILL while N+1's gate is armed: N+1 starts once N is gone
    (never beside it), N's crash and N+1's start are recorded together, N runs again."""
    q, ledger, running, held, _consumer, first = long_run_with_one_held(
        make_queue, start_program, tmp_path, held_seconds=0.5
    )
    time.sleep(0.2)  # the gate armed
    os.kill(first.pid, signal.SIGKILL)
    wait_status(q, held, Status.PROCESSED, timeout=30)
    wait_status(q, running, Status.PROCESSED, timeout=60)
    runs = read_runs(ledger)
    assert peak_concurrency(runs) == 1, overlaps(runs)
    killed, rerun = runs_of(runs, "running")
    (n1,) = runs_of(runs, "held")
    assert not killed.ended and n1.start >= killed.last and rerun.ended
    assert q.get_job(held).attempts == 1 and q.get_job(running).attempts == 2
    assert "event=started_held job=" in log_of(tmp_path)


def test_stop_requested_just_after_the_held_job_began__its_start_is_recorded_and_it_is_given_back(
    make_queue: Callable[..., PersistentQ],
    start_program: StartProgram,
    tmp_path: Path,
    db_env: dict[str, str],
) -> None:
    """The consumer is stopped (SIGSTOP) across N's end, so N+1 begins on its own; SIGTERM
    waits for it, then SIGCONT: the stop kills N+1 first, and since it had begun its start is
    written with N's outcome and it is given back (released, attempt not spent): never lost in
    silence, and run again by the next consumer."""
    q = make_queue(lease_seconds=LEASE_SECONDS)
    ledger = tmp_path / "ledger.jsonl"
    running = put(q, ledger, "running", 0.8)
    held = put(q, ledger, "held", 30, rerun_seconds=0.3)
    consumer = start_program("pq-consumer", **AHEAD)
    wait_held(tmp_path, held)
    stop_outside_a_write([consumer.pid], db_env)
    began = wait_runs(ledger, "held", 1)[0]  # N ended: N+1 began while the consumer is stopped
    os.kill(consumer.pid, signal.SIGTERM)
    os.kill(consumer.pid, signal.SIGCONT)
    assert consumer.wait(30) == 0
    wait_until(lambda: not pid_alive(began.pid), timeout=10, what="the cut run to die")
    assert q.get_job(running).status == Status.PROCESSED
    job = q.get_job(held)
    assert job.status == Status.UNPROCESSED and job.attempts == 0
    moves = [(e.from_status, e.to_status) for e in q.events(held)]
    assert (Status.UNPROCESSED, Status.UNDER_PROCESS) in moves and moves[-1][1] == Status.UNPROCESSED
    assert "event=held_run_cut" in log_of(tmp_path)

    start_program("pq-consumer", **AHEAD)
    wait_status(q, held, Status.PROCESSED, timeout=60)
    runs = read_runs(ledger)
    assert peak_concurrency(runs) == 1, overlaps(runs)
    cut, rerun = runs_of(runs, "held")
    assert not cut.ended and rerun.ended and cut.start >= runs_of(runs, "running")[0].last
    assert q.get_job(held).attempts == 1
