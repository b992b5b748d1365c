"""PostgreSQL failing over to its standby: what pqueue keeps, and how soon every program follows.

Each test builds a private primary and a streaming standby (initdb, `pg_basebackup -R`, free
ports, a temporary directory; never the machine's own server) and points real pqueue programs at
both through one multi-host URL. "Killed" is SIGKILL of every process of the primary, as a crash
or a power cut; "promoted" is `pg_ctl promote` of the standby.

- Synchronous standby, HTTP load, a job running when the primary dies: every 202 ends processed,
  no 500, never two runs at once (run ledger); the job that finished while no primary answered
  is recorded once the new one does (fenced by its lease, after its lease ran out), not run
  again; the intake acknowledges and the consumer claims again within bounds measured here; idle
  dispatch goes through LISTEN on the new primary; the old primary, started again only as a
  standby (the fencing recipe of docs/architecture.md), takes no writes and is never used.
- Asynchronous standby held behind (its walsender stopped), HTTP load through a real intake,
  primary killed and standby promoted: the acknowledged jobs lost are counted, and every id
  acknowledged answers its own payload or 404, never another job (before, the promoted server's
  rewound sequence gave them to new jobs); a keyed resend of a lost job makes a new job with a new
  id; a job whose claim was lost and that is claimed again while its first run goes on records
  only the new claim's outcome (its lease id is not given twice).
- Restored from a copy taken before the last jobs (archive recovery, then a new timeline): the
  ids of the jobs stored after the copy are never given again.
- Every spelling of a multi-host URL, the standby named first: `pq migrate`, the intake and the
  consumer (with its LISTEN) all reach the primary.
- An intake and a consumer pointed at a standby: not available (/healthz 503 naming it), both
  wait without exiting, log once and then every 10 s, and work once it is promoted.
"""

from __future__ import annotations

import itertools
import statistics
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from pqueue import JobNotFound, PersistentQ, Status
from tests.faults.ha import ReplicatedPair
from tests.faults.intake import start_producer
from tests.faults.ledger import Run, overlaps, peak_concurrency, read_runs, runs_of
from tests.faults.load import HANG_SECONDS, Answer, HttpLoad, first_answer
from tests.faults.settings import LEASE_SECONDS
from tests.faults.stored import wait_finished
from tests.pg_cluster import PrivateCluster
from tests.postgres import require_postgres
from tests.programs import StartProgram
from tests.support import BIN, free_port, wait_until

pytestmark = [pytest.mark.process, pytest.mark.postgres, pytest.mark.timeout(240)]

SCHEMA = "faults"
# Bounds this file asserts (seconds, from the promotion): the figures it prints are far below them.
ACCEPT_BOUND = 10.0
CLAIM_BOUND = 10.0
# Requests acknowledged while the asynchronous standby is held behind (each then lost at the
# failover): more than the 32 values a sequence logs ahead, so a rewound sequence would reissue ids.
HELD_BEHIND = 60
# Seconds after its put that the job across becomes due: long enough for its row to reach the
# standby before the standby is held behind, so that its claim is what the failover loses.
ACROSS_DUE = 3.0


@pytest.fixture
def pair(request: pytest.FixtureRequest) -> Iterator[ReplicatedPair]:
    """A primary and its streaming standby: synchronous, unless a test parametrizes pair="asynchronous"."""
    require_postgres()  # the suite's PostgreSQL tests run together: skipped locally, required in CI
    built = ReplicatedPair(synchronous=getattr(request, "param", "synchronous") == "synchronous")
    yield built
    built.destroy()


@pytest.fixture
def db_env(pair: ReplicatedPair, tmp_path: Path) -> dict[str, str]:
    """The programs' database: a schema reached through both hosts (libpq's multi-host URL)."""
    url = pair.url(pair.primary, pair.standby)
    return {"PQ_HOME": str(tmp_path), "PQ_DATABASE_URL": url, "PQ_DB_SCHEMA": SCHEMA}


def test_synchronous_standby__primary_killed_under_load__nothing_lost_and_every_program_follows(
    pair: ReplicatedPair, make_queue: Callable[..., PersistentQ], start_program: StartProgram, tmp_path: Path
) -> None:
    q = make_queue(lease_seconds=LEASE_SECONDS)
    ledger = tmp_path / "ledger.jsonl"
    port = free_port()
    start_producer(start_program, port)
    start_program("pq-consumer")
    intake = f"http://127.0.0.1:{port}"
    wait_until(lambda: listeners(pair, pair.primary), timeout=60, what="the idle consumer to LISTEN")
    assert q.replication().mode == "synchronous"
    assert 'mode="synchronous"' in httpx.get(f"{intake}/metrics").text

    with HttpLoad(intake, lambda n: {"ledger": str(ledger), "tag": f"http-{n}"}, clients=2, pause=0.05) as load:
        wait_until(lambda: len(load.acknowledged()) > 20 and read_runs(ledger), timeout=60, what="jobs taken and run")
        # The job running at the failover: it ends while no primary answers, after its lease.
        across = q.put_item({"ledger": str(ledger), "tag": "across", "seconds": 1.0}, priority=-1)
        wait_until(lambda: runs_of(read_runs(ledger), "across"), timeout=60, what="the job across to start")
        down_at = time.monotonic()
        pair.kill_primary()
        refused = wait_until(lambda: first_answer(load, 503, down_at), timeout=30, what="the intake to answer 503")
        wait_until(lambda: runs_of(read_runs(ledger), "across")[0].ended, timeout=30, what="the job across to end")
        # Held down past the lease the job last renewed: before this change its outcome was lost.
        time.sleep(max(0.0, down_at + LEASE_SECONDS + 1 - time.monotonic()))
        pair.promote()
        up_at = time.monotonic()
        accepted = wait_until(lambda: first_answer(load, 202, up_at), timeout=ACCEPT_BOUND + 20, what="a 202")
        claimed = wait_until(
            lambda: [r for r in read_runs(ledger) if r.start > up_at], timeout=CLAIM_BOUND + 20, what="a new run"
        )[0]
        load.wait_acknowledged(20, since=up_at)
    answers = load.answers

    acknowledged = load.acknowledged()
    jobs = wait_finished(q, [*acknowledged, across], timeout=120)
    runs = read_runs(ledger)
    lost = sorted(i for i in acknowledged if jobs[i].status != Status.PROCESSED)
    during = [a for a in answers if down_at <= a.sent <= up_at]
    dispatch = idle_dispatch(q, ledger, count=5)
    consumer_log = (tmp_path / "pq-consumer-1.log").read_text(errors="replace")
    print(
        f"figures: synchronous standby, primary killed, standby promoted {up_at - down_at:.2f}s later; intake "
        f"answered 503 {refused.answered - down_at:.2f}s after the kill, 202 again {accepted.answered - up_at:.2f}s "
        f"after the promotion; the consumer claimed {claimed.start - up_at:.2f}s after it; {len(answers)} requests, "
        f"{len(acknowledged)} acknowledged, lost {len(lost)}; during the outage "
        f"{sorted({a.status for a in during}, key=str)}, slowest answer {max(a.seconds for a in during):.2f}s; "
        f"most runs at once {peak_concurrency(runs)}; idle dispatch after it p50 "
        f"{statistics.median(dispatch) * 1000:.0f} ms, max {max(dispatch) * 1000:.0f} ms"
    )
    assert not lost, f"acknowledged but not processed: {lost[:20]}"
    assert {a.status for a in answers} <= {202, 503}, sorted({(a.status, a.error) for a in answers}, key=str)
    assert max(a.seconds for a in during) < HANG_SECONDS
    assert accepted.answered - up_at < ACCEPT_BOUND and claimed.start - up_at < CLAIM_BOUND
    assert peak_concurrency(runs) == 1, overlaps(runs)
    # The run across the failover: recorded late, by its own consumer, and never run again.
    assert jobs[across].status == Status.PROCESSED and jobs[across].attempts == 1
    assert len(runs_of(runs, "across")) == 1
    assert f"job={across}" in consumer_log and "event=recorded_late" in consumer_log
    # Idle dispatch on the new primary goes through LISTEN again (polling would take up to 1 s).
    assert "LISTEN connection lost" in consumer_log and "LISTEN connection back" in consumer_log
    assert listeners(pair, pair.standby) >= 1
    assert pair.sql(pair.standby, "SELECT pg_is_in_recovery()") == [(False,)]

    fence_old_primary(pair, q, intake)


def fence_old_primary(pair: ReplicatedPair, q: PersistentQ, intake: str) -> None:
    """docs/architecture.md's recipe: the old primary comes back only as a standby (standby.signal
    before it starts), so it takes no writes, and the programs, whose URL names it first, never
    write to it."""
    (pair.primary.data / "standby.signal").touch()
    (pair.primary.data / "postmaster.pid").unlink()  # left by the kill
    pair.primary.start()
    assert pair.sql(pair.primary, "SELECT pg_is_in_recovery()") == [(True,)]
    answer = httpx.post(f"{intake}/jobs", json={"payload": {"tag": "after-fencing", "seconds": 0}})
    assert answer.status_code == 202, answer.text
    assert q.get_job(answer.json()["id"]).payload == {"tag": "after-fencing", "seconds": 0}
    count = f'SELECT count(*) FROM "{SCHEMA}".pq_jobs WHERE payload @> \'{{"tag": "after-fencing"}}\''
    assert pair.sql(pair.standby, count) == [(1,)]


def idle_dispatch(q: PersistentQ, ledger: Path, count: int) -> list[float]:
    """Seconds from a put into an idle queue to its run's first line, `count` times."""
    samples = []
    for n in range(count):
        time.sleep(0.3)
        tag = f"idle-{n}"
        q.put_item({"ledger": str(ledger), "tag": tag, "seconds": 0})
        committed = time.monotonic()
        run = wait_until(partial(ran, ledger, tag), timeout=30, what=f"{tag} to run")[0]
        samples.append(run.start - committed)
    return samples


def listeners(pair: ReplicatedPair, cluster: PrivateCluster) -> int:
    """Sessions LISTENing on the cluster (the consumers' wake-up connections)."""
    [(count,)] = pair.sql(cluster, "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'LISTEN %'")
    return int(count)


def ran(ledger: Path, tag: str) -> list[Run]:
    """The runs of the job tagged so, as far as the ledger says now."""
    return runs_of(read_runs(ledger), tag)


def processed(url: str) -> bool:
    """Whether the intake says the job at this URL is processed."""
    return bool(httpx.get(url).json()["status"] == "processed")


@pytest.mark.parametrize("pair", ["asynchronous"], indirect=True)
def test_asynchronous_standby_held_behind__primary_killed__lost_jobs_counted_and_no_id_names_another_job(
    pair: ReplicatedPair, make_queue: Callable[..., PersistentQ], start_program: StartProgram, tmp_path: Path
) -> None:
    q = make_queue()
    ledger = tmp_path / "ledger.jsonl"
    port = free_port()
    start_producer(start_program, port)
    start_program("pq-consumer")
    # Queue "across": a long job whose claim the failover loses, and two consumers for it (a 30 s
    # lease, so neither renews nor gives up before the run ends).
    for _ in range(2):
        start_program("pq-consumer", PQ_QUEUE="across", PQ_LEASE_SECONDS="30")
    intake = f"http://127.0.0.1:{port}"
    assert 'mode="asynchronous"' in httpx.get(f"{intake}/metrics").text

    def payload(n: int) -> dict[str, Any]:
        return {"ledger": str(ledger), "tag": f"http-{n}", "seconds": 0}

    def fields(n: int) -> dict[str, Any]:
        """Every other request carries an idempotency key (the keyed insert is a statement of its own)."""
        return {"idempotency_key": f"key-{n}"} if n % 2 else {}

    with HttpLoad(intake, payload, clients=2, pause=0.02, fields=fields) as load:
        load.wait_acknowledged(20, since=0)
        # Its row reaches the standby; its claim, due a few seconds later, will not.
        across_job = {"ledger": str(ledger), "tag": "across", "seconds": 10, "rerun_seconds": 15}
        across = q.put_item(across_job, queue="across", run_after_seconds=ACROSS_DUE)
        stored = f'SELECT count(*) FROM "{SCHEMA}".pq_jobs WHERE id = {across}'
        wait_until(lambda: pair.sql(pair.standby, stored) == [(1,)], timeout=30, what="the job across on the standby")
        pair.hold_standby_behind()
        held_at = time.monotonic()
        load.wait_acknowledged(HELD_BEHIND, since=held_at)
        first_run = wait_until(partial(ran, ledger, "across"), timeout=60, what="the job across to start")[0]
        down_at = time.monotonic()
        pair.kill_primary()
        pair.promote()
        up_at = time.monotonic()
        load.wait_acknowledged(HELD_BEHIND, since=up_at)
    answers = load.answers
    # Claimed again on the promoted server while its first run goes on, by the other consumer.
    second_run = wait_until(lambda: ran(ledger, "across")[1:], timeout=60, what="the job across claimed again")[0]
    across_done = wait_finished(q, [across], timeout=120)[across]
    first_run = ran(ledger, "across")[0]  # read again: how long it went on

    acknowledged = [(a.job_id, a.n) for a in answers if a.status == 202 and a.job_id is not None]
    with httpx.Client(base_url=intake, timeout=30) as client:
        read = {n: client.get(f"/jobs/{job_id}") for job_id, n in acknowledged}
        lost = sorted(n for n, answer in read.items() if not own(answer, n))
        # Every keyed request whose job was lost, sent again as its partner would.
        resent = {n: resend(client, n, payload(n), fields(n)) for _, n in acknowledged if fields(n) and n in lost}
    # An id that answers at all must answer its own job: else the partner reads another's payload and result.
    others = [
        (job_id, f"http-{n}", read[n].json()["payload"]["tag"])
        for job_id, n in acknowledged
        if n in lost and read[n].status_code != 404
    ]
    given_twice = sorted(job_id for job_id, count in Counter(i for i, _ in acknowledged).items() if count > 1)
    first_after = min(a.job_id for a in answers if a.status == 202 and a.sent > up_at and a.job_id is not None)
    held = held_requests(answers, held_at, down_at)
    print(
        f"figures: asynchronous standby held behind for {down_at - held_at:.2f}s, primary killed, standby promoted; "
        f"{len(answers)} requests, {len(acknowledged)} acknowledged, lost {len(lost)} "
        f"({sum(n in lost for n in held)} of the {len(held)} acknowledged while the standby was held); "
        f"ids answering another job {len(others)}, ids given twice {len(given_twice)}; {len(resent)} keyed "
        f"resends of lost jobs, {sum(r.new for r in resent.values())} new jobs; first new id {first_after}"
    )
    print(
        f"figures: the run whose claim the failover lost ended {first_run.last - up_at:.2f}s after the promotion, "
        f"the job claimed again {second_run.start - up_at:.2f}s after it; recorded: "
        f"{'the new claim' if across_done.result == {'tag': 'across', 'pid': second_run.pid} else across_done.result}"
    )
    assert {a.status for a in answers} <= {202, 503}, sorted({(a.status, a.error) for a in answers}, key=str)
    assert lost, "the standby held behind lost nothing: the fault was not injected"
    assert held_at < first_run.start < down_at < second_run.start, "the job across was not claimed while held"
    # The lost claim's lease id was not given to the new claim: only the new claim's run records.
    assert across_done.status == Status.PROCESSED and across_done.result == {"tag": "across", "pid": second_run.pid}
    assert not others, f"(id, sent, answered): {others[:10]}"
    assert not given_twice, f"ids acknowledged to two requests: {given_twice[:20]}"
    taken = {job_id for job_id, _ in acknowledged}
    for n, again in resent.items():
        assert again.payload == payload(n), (n, again)
        assert again.new and again.job_id not in taken, (n, again)


@dataclass(frozen=True)
class Resent:
    """A keyed request sent again: the id it was answered and that job's payload."""

    job_id: int
    new: bool  # 202, a new job; 200, the key's job, found
    payload: Any


def resend(client: httpx.Client, n: int, payload: Any, fields: dict[str, Any]) -> Resent:
    """POST request n again, as a partner retrying it after a failover would, and read the job back."""
    answer = client.post("/jobs", json={"payload": payload, **fields})
    assert answer.status_code in (200, 202), (n, answer.text)
    job_id = answer.json()["id"]
    return Resent(job_id, answer.status_code == 202, client.get(f"/jobs/{job_id}").json()["payload"])


def own(answer: httpx.Response, n: int) -> bool:
    """Whether GET /jobs/{id} answered the job request n posted (its tag is in the payload)."""
    return answer.status_code == 200 and answer.json()["payload"]["tag"] == f"http-{n}"


def held_requests(answers: list[Answer], held_at: float, down_at: float) -> list[int]:
    """The requests sent and acknowledged while the standby was held behind and the primary alive."""
    return [a.n for a in answers if a.status == 202 and held_at <= a.sent and a.answered < down_at]


@pytest.mark.parametrize("pair", ["asynchronous"], indirect=True)
def test_restored_from_a_copy_taken_before_the_last_jobs__their_ids_are_never_given_again(
    pair: ReplicatedPair, make_queue: Callable[..., PersistentQ]
) -> None:
    """A restore from a backup (here the standby's data directory, stopped as a copy would be and
    then recovered with recovery.signal) ends on a new timeline, as a point-in-time restore does."""
    q = make_queue()
    kept = [q.put_item({"n": n}) for n in range(5)]
    wait_until(lambda: standby_holds(pair, len(kept)), timeout=30, what="the standby to hold the jobs")
    pair.standby.stop()  # the backup, taken here
    after_copy = [q.put_item({"n": n}) for n in range(5, 55)]  # acknowledged, then lost with the primary
    pair.kill_primary()
    pair.restore_standby_as_a_backup()
    again = [q.put_item({"n": n}) for n in range(55, 65)]
    print(f"figures: restored from a copy: {len(after_copy)} jobs lost, the next ids {again[0]} to {again[-1]}")
    assert not set(again) & set(after_copy), sorted(set(again) & set(after_copy))
    assert [q.get_job(i).payload for i in kept] == [{"n": n} for n in range(5)]
    for lost in after_copy:
        with pytest.raises(JobNotFound):
            q.get_job(lost)


def standby_holds(pair: ReplicatedPair, count: int) -> bool:
    """Whether the standby has replayed this many jobs (and the tables, made a moment ago)."""
    try:
        return pair.sql(pair.standby, f'SELECT count(*) FROM "{SCHEMA}".pq_jobs') == [(count,)]
    except psycopg.errors.UndefinedTable:
        return False


def test_every_multi_host_url_spelling__pq_migrate_intake_and_consumer_reach_the_primary(
    pair: ReplicatedPair, start_program: StartProgram, tmp_path: Path
) -> None:
    standby, primary = pair.standby.port, pair.primary.port
    spellings = {
        "libpq": f"postgresql+psycopg://postgres@127.0.0.1:{standby},127.0.0.1:{primary}/postgres",
        "sqlalchemy": f"postgresql+psycopg://postgres@/postgres?host=127.0.0.1:{standby}&host=127.0.0.1:{primary}",
        "lists": f"postgresql://postgres@/postgres?host=127.0.0.1,127.0.0.1&port={standby},{primary}",
    }
    started = []
    for name, url in spellings.items():
        env = {"PQ_DATABASE_URL": url, "PQ_DB_SCHEMA": f"url_{name}"}
        migrated = subprocess.run(
            [str(BIN / "pq"), "migrate"], env={"PQ_HOME": str(tmp_path), **env}, capture_output=True, text=True
        )
        assert migrated.returncode == 0, migrated.stderr
        port = free_port()
        start_producer(start_program, port, **env)
        start_program("pq-consumer", **env)
        started.append((name, port))
    for name, port in started:
        payload = {"tag": name, "ledger": str(tmp_path / "ledger.jsonl")}
        answer = httpx.post(f"http://127.0.0.1:{port}/jobs", json={"payload": payload})
        assert answer.status_code == 202, (name, answer.text)
        job_url = f"http://127.0.0.1:{port}/jobs/{answer.json()['id']}"
        wait_until(partial(processed, job_url), timeout=60, what=name)
    logs = "".join(path.read_text(errors="replace") for path in tmp_path.glob("pq-*.log"))
    assert "LISTEN connection lost" not in logs and "not ready" not in logs, logs[-3000:]
    # Every consumer LISTENs, on the primary.
    wait_until(lambda: listeners(pair, pair.primary) == len(spellings), timeout=30, what="every consumer to LISTEN")
    for name in spellings:
        tables = f"SELECT count(*) FROM pg_tables WHERE schemaname = 'url_{name}' AND tablename = 'pq_jobs'"
        assert pair.sql(pair.primary, tables) == [(1,)], name


def test_pointed_at_a_standby__not_available_waiting_and_working_once_promoted(
    pair: ReplicatedPair, make_queue: Callable[..., PersistentQ], start_program: StartProgram, tmp_path: Path
) -> None:
    make_queue()  # the schema, created on the primary, streams to the standby
    standby_only = {"PQ_DATABASE_URL": f"postgresql+psycopg://postgres@127.0.0.1:{pair.standby.port}/postgres"}
    port = free_port()
    producer = start_program("pq-producer", "--port", str(port), **standby_only)
    consumer = start_program("pq-consumer", **standby_only)
    intake = f"http://127.0.0.1:{port}"
    health = wait_until(lambda: answer_of(f"{intake}/healthz"), timeout=60, what="the intake to answer")
    assert health.status_code == 503 and "standby" in health.json()["detail"], health.text
    post = httpx.post(f"{intake}/jobs", json={"payload": {"tag": "refused"}})
    assert post.status_code == 503 and post.headers["Retry-After"], post.text
    consumer_log = tmp_path / "pq-consumer-1.log"
    said = wait_until(lambda: logged_at(consumer_log, "database not ready")[1:], timeout=40, what="a second line")
    gaps = [later - earlier for earlier, later in itertools.pairwise(logged_at(consumer_log, "database not ready"))]
    assert producer.poll() is None and consumer.poll() is None
    assert "it is a standby (in recovery)" in consumer_log.read_text()

    pair.kill_primary()
    pair.promote()
    wait_until(lambda: httpx.get(f"{intake}/healthz").status_code == 200, timeout=30, what="/healthz 200")
    job = httpx.post(f"{intake}/jobs", json={"payload": {"tag": "accepted", "ledger": str(tmp_path / "l.jsonl")}})
    assert job.status_code == 202, job.text
    job_url = f"{intake}/jobs/{job.json()['id']}"
    wait_until(lambda: processed(job_url), timeout=60, what="the job to be processed")
    print(f"figures: on a standby, the consumer said why {len(said) + 1} times, {min(gaps):.1f}s apart or more")
    assert min(gaps) >= 9.9, gaps


def logged_at(log: Path, needle: str) -> list[float]:
    """When (seconds since the epoch, from each line's timestamp) the log said this."""
    stamps = []
    for line in log.read_text(errors="replace").splitlines():
        if needle in line:
            stamp = datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")
            stamps.append(stamp.timestamp())
    return stamps


def answer_of(url: str) -> httpx.Response | None:
    try:
        return httpx.get(url, timeout=5)
    except httpx.HTTPError:
        return None
