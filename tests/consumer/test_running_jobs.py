"""A real `pq-consumer` runs jobs end to end and records every kind of failure as an error."""

from __future__ import annotations

import shutil
import signal
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pqueue import PersistentQ, Status
from tests.consumer.algos import read_log
from tests.programs import Programs, StartConsumer, pid_alive, traced_by, wait_exit, wait_gone
from tests.support import wait_status, wait_until

pytestmark = [pytest.mark.process, pytest.mark.timeout(90)]


def test_consumer__runs_jobs_end_to_end_and_exits_when_drained(
    make_queue: Callable[..., PersistentQ], start_consumer: StartConsumer
) -> None:
    q = make_queue()
    ids = [q.put_item({"do": "ok", "value": n}) for n in range(3)]
    consumer = start_consumer("--drain")
    assert wait_exit(consumer) == 0
    for n, job_id in enumerate(ids):
        job = q.get_job(job_id)
        assert job.status == Status.PROCESSED
        assert job.result["echo"] == n
        assert job.attempts == 1
    assert q.workers() == []  # unregistered on a clean exit


@pytest.mark.parametrize("backend", ["sqlite"])
def test_consumer__runs_the_default_iqr_algorithm(
    make_queue: Callable[..., PersistentQ], start_consumer: StartConsumer
) -> None:
    q = make_queue()
    values = [10.0, 12.0, 11.0, 13.0, 12.5, 95.0]
    job_id = q.put_item({"readings": [{"vendor": "acme", "value": v} for v in values]})
    consumer = start_consumer("--drain", PQ_ALGORITHM="consumer.algorithms.iqr:run")
    assert wait_exit(consumer, timeout=60) == 0
    job = q.get_job(job_id)
    assert job.status == Status.PROCESSED, job.error
    q1, median, q3 = statistics.quantiles(values, n=4, method="inclusive")
    acme = job.result["vendors"]["acme"]
    assert (acme["q1"], acme["median"], acme["q3"]) == pytest.approx((q1, median, q3))
    assert [o["value"] for o in acme["outliers"]] == [95.0]


FAILURES: dict[str, tuple[dict[str, Any], str]] = {
    "raises": ({"do": "fail", "message": "bad reading 7"}, "ValueError: bad reading 7"),
    "os_exit_3": ({"do": "exit", "code": 3}, "the algorithm process exited with code 3 without a result"),
    "sigsegv": ({"do": "segfault"}, "the algorithm process was killed by SIGSEGV (signal 11) without a result"),
    "result_not_json": ({"do": "not_json"}, "TypeError: the algorithm's result is not JSON"),
}


@pytest.mark.parametrize("backend", ["sqlite"])
def test_consumer__records_each_failing_run_as_an_error(
    make_queue: Callable[..., PersistentQ], start_consumer: StartConsumer, tmp_path: Path
) -> None:
    q = make_queue()
    ids = {}
    for name, (payload, _expected) in FAILURES.items():
        ids[name] = q.put_item({**payload, "log": str(tmp_path / f"{name}.jsonl")}, max_attempts=1)
    consumer = start_consumer("--drain")
    assert wait_exit(consumer) == 0
    for name, (_payload, expected) in FAILURES.items():
        job = q.get_job(ids[name])
        assert job.status == Status.MANUAL_INTERVENTION, name  # its only attempt failed
        assert expected in (job.error or "").splitlines()[-1], (name, job.error)
        assert not pid_alive(read_log(tmp_path / f"{name}.jsonl")[0]["pid"])
    raised = q.get_job(ids["raises"]).error or ""
    assert raised.startswith("Traceback") and "tests/consumer/algos.py" in raised  # the traceback's tail


@pytest.mark.parametrize("backend", ["sqlite"])
def test_consumer__crashed_job_is_retried_then_needs_manual_intervention(
    make_queue: Callable[..., PersistentQ], start_consumer: StartConsumer, tmp_path: Path
) -> None:
    q = make_queue()
    log = tmp_path / "runs.jsonl"
    job_id = q.put_item({"do": "fail", "log": str(log)})
    consumer = start_consumer("--drain", PQ_MAX_ATTEMPTS="3")
    assert wait_exit(consumer) == 0
    job = q.get_job(job_id)
    assert job.status == Status.MANUAL_INTERVENTION
    assert job.attempts == 3
    runs = read_log(log)
    assert len(runs) == 3 and len({run["pid"] for run in runs}) == 3  # a fresh process per attempt
    moves = [(e.from_status, e.to_status) for e in q.events(job_id)]
    assert moves.count((Status.UNDER_PROCESS, Status.CRASHED)) == 2
    assert moves[-1] == (Status.UNDER_PROCESS, Status.MANUAL_INTERVENTION)


@pytest.mark.parametrize("backend", ["sqlite"])
def test_consumer__its_pq_max_attempts_becomes_the_queues_policy_and_a_later_host_follows_it(
    make_queue: Callable[..., PersistentQ], start_consumer: StartConsumer, tmp_path: Path
) -> None:
    q = make_queue(max_attempts=3)  # the submitter's default stamps 3
    first = q.put_item({"do": "fail", "log": str(tmp_path / "first.jsonl")})
    assert wait_exit(start_consumer("--drain", PQ_MAX_ATTEMPTS="2")) == 0
    assert (q.get_job(first).status, q.get_job(first).attempts) == (Status.MANUAL_INTERVENTION, 2)
    second = q.put_item({"do": "fail", "log": str(tmp_path / "second.jsonl")})
    assert wait_exit(start_consumer("--drain", PQ_MAX_ATTEMPTS="5")) == 0
    assert q.get_job(second).attempts == 2, "the stored policy, not this host's PQ_MAX_ATTEMPTS"
    said = (tmp_path / "consumer-1.log").read_text()
    assert "PQ_MAX_ATTEMPTS=5 is overruled by queue 'default'" in said
    assert "pq queue set default --max-attempts 5" in said


def test_consumer__permanent_error_goes_to_manual_intervention_without_retries(
    make_queue: Callable[..., PersistentQ], start_consumer: StartConsumer, tmp_path: Path
) -> None:
    q = make_queue()
    raised = q.put_item({"do": "refuse", "message": "vendor list is empty", "log": str(tmp_path / "a.jsonl")})
    marked = q.put_item({"do": "refuse", "marked": True, "message": "vendor", "log": str(tmp_path / "b.jsonl")})
    consumer = start_consumer("--drain", PQ_MAX_ATTEMPTS="3")
    assert wait_exit(consumer) == 0
    for job_id, last_line, log in (
        (raised, "pqueue.PermanentError: vendor list is empty", "a.jsonl"),
        (marked, "KeyError: 'vendor'", "b.jsonl"),
    ):
        job = q.get_job(job_id)
        assert job.status == Status.MANUAL_INTERVENTION and job.attempts == 1, job
        assert (job.error or "").splitlines()[-1] == last_line
        assert len(read_log(tmp_path / log)) == 1  # run once: no retry
        moves = [(e.from_status, e.to_status) for e in q.events(job_id)]
        assert moves[-1] == (Status.UNDER_PROCESS, Status.MANUAL_INTERVENTION)


@pytest.mark.parametrize("backend", ["sqlite"])
def test_consumer__iqr_refuses_bad_readings_at_once(
    make_queue: Callable[..., PersistentQ], start_consumer: StartConsumer
) -> None:
    q = make_queue()
    job_id = q.put_item({"readings": [{"vendr": "acme", "value": 1}]})
    consumer = start_consumer("--drain", PQ_ALGORITHM="consumer.algorithms.iqr:run", PQ_MAX_ATTEMPTS="3")
    assert wait_exit(consumer, timeout=60) == 0
    job = q.get_job(job_id)
    assert job.status == Status.MANUAL_INTERVENTION and job.attempts == 1
    assert (job.error or "").splitlines()[-1] == "ValueError: readings[0] has no 'vendor'"


@pytest.mark.parametrize("backend", ["sqlite"])
def test_consumer__timeout_kills_the_algorithm_and_its_grandchild(
    make_queue: Callable[..., PersistentQ], start_consumer: StartConsumer, tmp_path: Path
) -> None:
    q = make_queue()
    log = tmp_path / "runs.jsonl"
    # Deaf to SIGTERM: only the SIGKILL after the short grace can end it.
    job_id = q.put_item({"do": "hang_with_grandchild", "ignore_term": True, "log": str(log)})
    start_consumer(PQ_JOB_TIMEOUT="1", PQ_MAX_ATTEMPTS="3", PQ_RETRY_BACKOFF_SECONDS="0")
    started = wait_until(lambda: read_log(log), what="the algorithm to start")[0]
    assert pid_alive(started["pid"]) and pid_alive(started["grandchild"])
    wait_status(q, job_id, Status.MANUAL_INTERVENTION)
    job = q.get_job(job_id)
    assert (job.attempts, job.error) == (1, "JobTimeout: the job ran longer than its time limit of 1s and was stopped")
    assert q.events(job_id)[-1].message == f"{job.error} (timed-out jobs are not retried)"
    wait_gone(started["pid"])
    wait_gone(started["grandchild"])
    starts = [entry for entry in read_log(log) if entry["event"] == "start"]
    assert len(starts) == 1, "a timed-out job is not run again, though it has attempts left"


@pytest.mark.parametrize("backend", ["sqlite"])
def test_consumer__uses_the_queues_stored_timeout_and_lease_over_its_own_settings(
    make_queue: Callable[..., PersistentQ], start_consumer: StartConsumer, tmp_path: Path
) -> None:
    q = make_queue()
    q.set_queue_policy("default", job_timeout=1, lease_seconds=6)
    log = tmp_path / "runs.jsonl"
    job_id = q.put_item({"do": "hang_with_grandchild", "log": str(log)}, max_attempts=1)
    start_consumer(PQ_JOB_TIMEOUT="3600", PQ_LEASE_SECONDS="30")
    started = wait_until(lambda: read_log(log), what="the algorithm to start")[0]
    assert q.get_job(job_id).lease_seconds == 6.0, "the claim took the queue's stored lease"
    wait_status(q, job_id, Status.MANUAL_INTERVENTION)
    assert "time limit of 1s" in (q.get_job(job_id).error or "")
    wait_gone(started["pid"])
    wait_gone(started["grandchild"])


@pytest.mark.parametrize("backend", ["sqlite"])
def test_consumer__paused_queue_is_not_claimed_until_resumed(
    make_queue: Callable[..., PersistentQ], start_consumer: StartConsumer, tmp_path: Path
) -> None:
    q = make_queue()
    q.pause()
    job_id = q.put_item({"do": "ok"})
    start_consumer()
    log = tmp_path / "consumer-0.log"
    # It has looked for work at least twice (it rescues before each claim, on start and every lease/2).
    wait_until(lambda: q.workers() and log.read_text().count("event=started") == 1)
    seen = q.workers()[0].last_seen
    wait_until(lambda: q.workers()[0].last_seen > seen, what="the consumer to idle through another loop")
    job = q.get_job(job_id)
    assert job.status == Status.UNPROCESSED and job.attempts == 0
    q.resume()
    wait_status(q, job_id, Status.PROCESSED)


@pytest.mark.parametrize("backend", ["sqlite"])
def test_consumer__once_runs_one_job_and_passes_settings_to_the_stamp_algorithm(
    make_queue: Callable[..., PersistentQ], start_consumer: StartConsumer, tmp_path: Path
) -> None:
    q = make_queue()
    inbox = tmp_path / "var" / "inbox"
    inbox.mkdir(parents=True)
    (inbox / "a.txt").write_text("first line\n")
    stamped = q.put_item({"file": "a.txt"})
    waiting = q.put_item({"file": "a.txt"})
    consumer = start_consumer("--once", PQ_ALGORITHM="consumer.algorithms.stamp:run")
    assert wait_exit(consumer) == 0
    job = q.get_job(stamped)
    assert job.status == Status.PROCESSED, job.error
    assert (inbox / "a.txt").read_text() == f"{job.result['stamp']}\nfirst line\n"
    assert q.get_job(waiting).status == Status.UNPROCESSED


@pytest.mark.parametrize("backend", ["sqlite"])
def test_consumer__idle_consumer_is_registered_and_unregistered_on_sigterm(
    make_queue: Callable[..., PersistentQ], start_consumer: StartConsumer
) -> None:
    q = make_queue()
    consumer = start_consumer()
    worker = wait_until(lambda: q.workers(), what="the consumer to register")[0]
    assert (worker.kind, worker.pid, worker.queue) == ("consumer", consumer.pid, "default")
    first_seen = worker.last_seen
    wait_until(lambda: q.workers()[0].last_seen > first_seen, what="an idle consumer to say it is alive")
    consumer.send_signal(signal.SIGTERM)
    assert wait_exit(consumer) == 0
    assert q.workers() == []


def test_consumer__idle_consumer_stops_at_once_on_sigterm_not_at_its_idle_tick(
    make_queue: Callable[..., PersistentQ], start_consumer: StartConsumer, programs: Programs, tmp_path: Path
) -> None:
    """The idle wait watches the consumer's self-pipe, which SIGTERM's handler writes: the stop
    ends the wait at once instead of at its timeout (IDLE_WAIT, 1 s; about 1.15 s from SIGTERM to
    exit before, 0.2 s after, on this machine). Told by the wait itself, not by a clock: strace
    shows the first wait that ends after the signal, which before returned at its timeout."""
    assert shutil.which("strace"), "this test needs strace (apt-get install strace)"
    q = make_queue()
    consumer = start_consumer()
    worker = wait_until(lambda: q.workers(), what="the consumer to register")[0]
    trace = tmp_path / "waits.strace"
    tracer = subprocess.Popen(["strace", "-qq", "-o", str(trace), "-e", f"trace={WAITS}", "-p", str(consumer.pid)])
    try:
        wait_until(lambda: traced_by(consumer.pid) == tracer.pid, what="strace attached to the consumer")
        first_seen = worker.last_seen
        wait_until(lambda: q.workers()[0].last_seen > first_seen, what="an idle consumer to say it is alive")
        time.sleep(0.05)  # into its next idle wait (it touched its row just before waiting)
        consumer.send_signal(signal.SIGTERM)
        assert wait_exit(consumer) == 0
    finally:
        tracer.wait(10)
    after = trace.read_text().split("--- SIGTERM", 1)[1]
    interrupted = "ERESTARTNOHAND (To be restarted if no handler)"
    ended = [line for line in after.splitlines() if " = " in line and not line.endswith(interrupted)]
    assert ended, f"no wait ended after SIGTERM:\n{after}"
    assert "(Timeout)" not in ended[0], f"the idle wait ran to its timeout after SIGTERM: {ended[0]}"
    assert "LISTEN connection lost" not in programs.log("consumer-0.log")  # the stop is no lost connection
    assert q.workers() == []


# The system calls a wait for work can be made of (Python's select.select, selectors, psycopg).
WAITS = "select,pselect6,poll,ppoll,epoll_wait,epoll_pwait"


@pytest.mark.parametrize("backend", ["sqlite"])
@pytest.mark.parametrize(
    ("algorithm", "code", "message"),
    [
        ("tests.consumer.no_such_module:run", 1, "importing tests.consumer.no_such_module failed: ModuleNotFoundError"),
        ("just-a-name", 2, "PQ_ALGORITHM='just-a-name' is not 'module:function'"),
    ],
    ids=["missing_module", "malformed"],
)
def test_consumer__unusable_algorithm_stops_it_with_one_clear_line_before_claiming(
    make_queue: Callable[..., PersistentQ],
    start_consumer: StartConsumer,
    tmp_path: Path,
    algorithm: str,
    code: int,
    message: str,
) -> None:
    q = make_queue()
    job_id = q.put_item({"do": "ok"})
    consumer = start_consumer(PQ_ALGORITHM=algorithm)
    assert wait_exit(consumer) == code
    assert message in (tmp_path / "consumer-0.log").read_text()
    assert q.get_job(job_id).attempts == 0


@pytest.mark.parametrize("backend", ["sqlite"])
def test_consumer__purges_finished_jobs_older_than_the_retention_while_idle(
    make_queue: Callable[..., PersistentQ], start_consumer: StartConsumer
) -> None:
    q = make_queue()
    done = q.put_item({"do": "ok"})
    waiting_for_a_person = q.put_item({"do": "ok"}, max_attempts=1)
    for job_id, status in ((done, Status.PROCESSED), (waiting_for_a_person, Status.CRASHED)):
        job = q.get_item("someone")
        assert job is not None and job.id == job_id
        q.update_status(job_id, status, lease_id=job.lease_id, error="broken")
    assert q.get_job(waiting_for_a_person).status == Status.MANUAL_INTERVENTION

    def age(job_id: int) -> float:
        finished = q.get_job(job_id).finished_at
        assert finished is not None
        return (q.now() - finished).total_seconds()

    wait_until(lambda: age(done) > 1.0 and age(waiting_for_a_person) > 1.0)
    start_consumer(PQ_RETENTION_DAYS="0.00001")  # 0.864 s
    wait_until(lambda: q.count_items() == 1, what="the old processed job to be purged")
    assert q.get_all_items().items[0].id == waiting_for_a_person  # it waits for a person
