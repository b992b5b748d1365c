"""The network to PostgreSQL partitioned, black-holed (silence) or cut (errors), then healed.

A black hole is the hard one: the sockets stay open and nothing ever tells the programs, so
only their own deadlines (pqueue.deadlines, PQ_DB_STATEMENT_TIMEOUT + PQ_DB_NETWORK_TIMEOUT)
end their calls. The consumer's job is killed before its lease runs out and a successor runs
it once; after the heal the partitioned consumer claims again, and the intake answers 202
again, within the issue's 30 s; during the partition the intake answers 503, never hangs.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from pqueue import DatabaseError, Job, PersistentQ, Settings, Status
from pqueue.database import make_engine
from pqueue.dialects import seat_lock_key
from tests.faults.blackhole import NetworkProxy
from tests.faults.intake import start_producer
from tests.faults.ledger import Run, overlaps, peak_concurrency, read_runs, runs_of
from tests.faults.settings import LEASE_SECONDS
from tests.programs import StartProgram, pid_alive, stop_program
from tests.support import free_port, wait_status, wait_until

pytestmark = [
    pytest.mark.process,
    pytest.mark.postgres,
    pytest.mark.timeout(180),
    pytest.mark.parametrize("backend", ["postgresql"]),
    pytest.mark.parametrize("fault", ["black_hole", "cut"]),
]

RECOVERY_BOUND = 30.0  # the bound: claims and 202s again within 30 s of the heal


@pytest.fixture
def proxy(db_env: dict[str, str]) -> Iterator[NetworkProxy]:
    """The network between the programs under test and PostgreSQL."""
    forwarder = NetworkProxy.to_url(db_env["PQ_DATABASE_URL"])
    yield forwarder
    forwarder.close()


def partition(proxy: NetworkProxy, fault: str) -> float:
    """Break the network the given way; when."""
    proxy.black_hole() if fault == "black_hole" else proxy.cut()
    return time.monotonic()


def heal(proxy: NetworkProxy) -> float:
    proxy.heal()
    return time.monotonic()


def wait_runs(ledger: Path, tag: str, count: int, timeout: float = 60.0) -> list[Run]:
    """Wait until the job has started `count` times; its runs."""

    def found() -> list[Run]:
        runs = runs_of(read_runs(ledger), tag)
        return runs if len(runs) >= count else []

    return wait_until(found, timeout=timeout, what=f"{count} run(s) of {tag}")


def log_text(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


def test_partition__job_dies_within_its_lease_and_the_consumer_claims_again_after_heal(
    fault: str,
    proxy: NetworkProxy,
    make_queue: Callable[..., PersistentQ],
    start_program: StartProgram,
    db_env: dict[str, str],
    tmp_path: Path,
) -> None:
    q = make_queue(lease_seconds=LEASE_SECONDS)
    ledger = tmp_path / "ledger.jsonl"
    long_id = q.put_item({"ledger": str(ledger), "tag": "long", "seconds": 60, "rerun_seconds": 0.5})
    partitioned = start_program("pq-consumer", PQ_DATABASE_URL=proxy.url_through(db_env["PQ_DATABASE_URL"]))
    partitioned_log = tmp_path / "pq-consumer-0.log"
    first = wait_runs(ledger, "long", 1)[0]

    broke_at = partition(proxy, fault)
    wait_until(lambda: not pid_alive(first.pid), timeout=LEASE_SECONDS + 10, what="the partitioned job to die")
    killed_after = time.monotonic() - broke_at
    successor = start_program("pq-consumer")  # straight to the database: another host
    wait_status(q, long_id, Status.PROCESSED, timeout=60)
    stop_program(successor)  # from now on only the partitioned consumer can run the next job
    next_id = q.put_item({"ledger": str(ledger), "tag": "after", "seconds": 0.2})
    wait_until(
        lambda: "event=database_unavailable" in log_text(partitioned_log),
        timeout=30,
        what="the partitioned consumer to say the database is unavailable",
    )

    healed_at = heal(proxy)
    wait_status(q, next_id, Status.PROCESSED, timeout=RECOVERY_BOUND + 30)
    runs = read_runs(ledger)
    recovery = runs_of(runs, "after")[0].start - healed_at
    killed, rerun = runs_of(runs, "long")
    log = log_text(partitioned_log)
    print(
        f"figures ({fault}): job last ran {killed.last - broke_at:.2f}s after the partition (lease "
        f"{LEASE_SECONDS}s), its process gone after {killed_after:.2f}s; partition lasted {healed_at - broke_at:.1f}s; "
        f"first claim {recovery:.2f}s after the heal; "
        f"database_unavailable lines: {log.count('event=database_unavailable')}, "
        f"deadline lines: {log.count('no answer from PostgreSQL within')}"
    )
    assert peak_concurrency(runs) == 1, overlaps(runs)
    # Dead before the lease it last renewed (before the partition) ran out.
    assert not killed.ended and killed.last < broke_at + LEASE_SECONDS
    assert rerun.ended and rerun.start > killed.last
    assert recovery < RECOVERY_BOUND, f"the consumer claimed again {recovery:.1f}s after the heal"
    assert f":{partitioned.pid}:" in (q.get_job(next_id).worker_id or "")
    assert partitioned.poll() is None
    if fault == "black_hole":  # silence is named: the deadline that ended the call, once per outage
        assert "no answer from PostgreSQL within 4s" in log


@dataclass(frozen=True)
class Answer:
    """One POST /jobs: when it was sent and answered (monotonic), its status and job id."""

    sent: float
    answered: float
    status: int
    job_id: int | None
    payload: int


class Submitter(threading.Thread):
    """Posts one job after another until stopped, noting every answer (or that none came)."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.answers: list[Answer] = []
        self.failures: list[str] = []
        self._done = threading.Event()

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=60) as client:
            n = 0
            while not self._done.is_set():
                n += 1
                sent = time.monotonic()
                try:
                    response = client.post("/jobs", json={"payload": n})
                except httpx.HTTPError as exc:  # no answer within a minute: the intake hung
                    self.failures.append(f"{type(exc).__name__}: {exc}")
                    continue
                job_id = response.json()["id"] if response.status_code == 202 else None
                self.answers.append(Answer(sent, time.monotonic(), response.status_code, job_id, n))
                if response.status_code == 503 and not response.headers.get("retry-after"):
                    self.failures.append(f"503 without Retry-After: {response.text}")
                self._done.wait(0.05)

    def stop(self) -> None:
        self._done.set()
        self.join(90)

    def count(self, status: int, after: float) -> int:
        return sum(1 for a in list(self.answers) if a.status == status and a.sent >= after)


def test_partition__intake_answers_503_never_hangs_and_202_again_after_heal(
    fault: str,
    proxy: NetworkProxy,
    make_queue: Callable[..., PersistentQ],
    start_program: StartProgram,
    db_env: dict[str, str],
) -> None:
    q = make_queue()
    port = free_port()
    start_producer(start_program, port, PQ_DATABASE_URL=proxy.url_through(db_env["PQ_DATABASE_URL"]))
    url = f"http://127.0.0.1:{port}"
    submitters = [Submitter(url) for _ in range(2)]  # two at once: they share a group commit
    for submitter in submitters:
        submitter.start()
    try:
        wait_until(lambda: sum(s.count(202, 0) for s in submitters) >= 5, timeout=60, what="the intake to accept")
        broke_at = partition(proxy, fault)
        wait_until(
            lambda: sum(s.count(503, broke_at) for s in submitters) >= 3,
            timeout=60,
            what="503s during the partition",
        )
        health = httpx.get(f"{url}/healthz", timeout=60)
        healed_at = heal(proxy)
        wait_until(
            lambda: any(a.status == 202 and a.answered >= healed_at for s in submitters for a in s.answers),
            timeout=RECOVERY_BOUND + 30,
            what="a 202 after the heal",
        )
    finally:
        for submitter in submitters:
            submitter.stop()

    answers = sorted((a for s in submitters for a in s.answers), key=lambda a: a.sent)
    during = [a for a in answers if a.sent >= broke_at and a.answered < healed_at]  # sent and answered
    recovery = min(a.answered for a in answers if a.status == 202 and a.answered >= healed_at) - healed_at
    slowest = max(a.answered - a.sent for a in answers)
    print(
        f"figures ({fault}): {len(during)} requests during the {healed_at - broke_at:.1f}s partition answered "
        f"{sorted({a.status for a in during})} in {min(a.answered - a.sent for a in during):.2f}-"
        f"{max(a.answered - a.sent for a in during):.2f}s; first 202 {recovery:.2f}s after the heal; "
        f"slowest answer {slowest:.2f}s"
    )
    assert not [f for s in submitters for f in s.failures], "a request got no answer, or a bad one"
    assert {a.status for a in answers} <= {202, 503}
    assert {a.status for a in during} == {503}
    assert health.status_code == 503
    assert recovery < RECOVERY_BOUND, f"the intake stored jobs again {recovery:.1f}s after the heal"
    assert slowest < RECOVERY_BOUND  # every request had its answer (503 or 202) within the bound
    for answer in answers:  # acknowledged means stored
        if answer.job_id is not None:
            assert q.get_job(answer.job_id).payload == answer.payload


def test_partition_inside_a_transaction__the_seat_lock_it_held_comes_back(
    fault: str,
    proxy: NetworkProxy,
    make_queue: Callable[..., PersistentQ],
    make_settings: Callable[..., Settings],
    db_env: dict[str, str],
) -> None:
    """A consumer cut off mid-claim holds the queue's seat lock; the server must not keep it for
    that silent client for ever (idle_in_transaction_session_timeout), or every claim waits."""
    q = make_queue(lease_seconds=LEASE_SECONDS)
    job_id = q.put_item({"n": 1})
    settings = make_settings(lease_seconds=LEASE_SECONDS, database_url=proxy.url_through(db_env["PQ_DATABASE_URL"]))
    cut_off = make_engine(settings.resolved_database_url, settings)
    conn = cut_off.connect()
    try:
        conn.begin()
        key = seat_lock_key(settings.queue, settings.db_schema)
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})  # as a claim does
        broke_at = partition(proxy, fault)
        claimed = wait_until(lambda: claim(q), timeout=RECOVERY_BOUND + 30, interval=0.1, what="a claim")
        took = time.monotonic() - broke_at
    finally:
        with contextlib.suppress(SQLAlchemyError):  # its rollback cannot get through
            conn.close()
        cut_off.dispose()
    print(f"figures ({fault}): the seat lock came back {took:.2f}s after the partition")
    assert claimed.id == job_id
    assert took < RECOVERY_BOUND


def claim(q: PersistentQ) -> Job | None:
    """Claim a job, or None while the seat lock is held (the claim's statement times out)."""
    try:
        return q.get_item("successor", lease_seconds=LEASE_SECONDS)
    except DatabaseError:
        return None
