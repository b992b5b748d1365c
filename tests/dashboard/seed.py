"""Jobs in every state, made through the library the way the programs make them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from pqueue import Job, PersistentQ, Status

WORKER = "consumer-test-1"
CALLBACK = "http://127.0.0.1:9/callback"


@dataclass(frozen=True)
class Seeded:
    """The ids of the seeded jobs, by what happened to them."""

    processed: list[int]
    crashed: int
    manual: int
    cancelled: int
    running: int
    waiting: list[int]
    other_queue: int


def _run(store: PersistentQ, job_id: int, status: Status, **outcome: object) -> None:
    job = store.get_item(WORKER)
    assert job is not None and job.id == job_id, f"expected to claim {job_id}, got {job}"
    if status != Status.UNDER_PROCESS:
        store.update_status(job_id, status, lease_id=job.lease_id, **outcome)  # type: ignore[arg-type]


def seed_every_state(store: PersistentQ) -> Seeded:
    """3 processed (one with a callback), 1 crashed, 1 manual_intervention, 1 cancelled,
    1 running, 2 waiting in `default` and 1 waiting in `reports`. Needs a long retry backoff,
    so the crashed job is not claimed again while seeding."""
    store.register_worker(WORKER, kind="consumer", queue="default", host="testhost", pid=4242)
    processed = []
    for n in range(3):
        job_id = store.put_item({"vendor": "acme", "readings": [n, n + 1]}, callback_url=CALLBACK if n == 0 else None)
        _run(store, job_id, Status.PROCESSED, result={"outliers": [n]})
        processed.append(job_id)
    crashed = store.put_item({"vendor": "globex", "readings": [1]})
    _run(store, crashed, Status.CRASHED, error="Traceback (most recent call last):\nValueError: bad reading")
    manual = store.put_item({"vendor": "initech", "readings": []}, max_attempts=1, callback_url=CALLBACK)
    _run(store, manual, Status.CRASHED, error="Traceback (most recent call last):\nKeyError: 'readings'")
    cancelled = store.put_item({"vendor": "umbrella"})
    store.cancel(cancelled, actor="admin")
    running = store.put_item({"vendor": "hooli", "readings": [5]})
    _run(store, running, Status.UNDER_PROCESS)
    waiting = [
        store.put_item({"vendor": "acme", "readings": [7]}),
        store.put_item({"vendor": "stark", "readings": [8]}),
    ]
    other_queue = store.put_item({"vendor": "wayne", "report": "monthly"}, queue="reports")
    return Seeded(processed, crashed, manual, cancelled, running, waiting, other_queue)


LONG_ERROR = (
    "Traceback (most recent call last):\n"
    '  File "/srv/pqueue/consumer/algorithms/iqr.py", line 41, in run\n'
    "    readings = [float(r['value']) for r in payload['readings'] if r['vendor'] == payload['vendor']]\n"
    "ValueError: could not convert string to float: 'n/a' (reading 3 of vendor 'acme-industrial-supplies-"
    "international' sent by the partner's nightly export, field 'value', row 1287 of the uploaded file)"
)
PAYLOAD = {"vendor": "acme", "readings": [{"vendor": "acme", "value": 12.5}, {"vendor": "acme", "value": "n/a"}]}


@dataclass(frozen=True)
class ThreeAm:
    """The ids of what an operator finds at 3 a.m."""

    manual: list[int]  # out of attempts, waiting for a person, one with a long traceback
    failed: int  # out of attempts, then failed by an operator ten minutes after its run
    processed: int
    running: int  # its lease about to end (its consumer has stopped renewing it)
    gone_workers: list[str]


def seed_three_am(store: PersistentQ, alive: str = "consumer-host1-4242") -> ThreeAm:
    """2 jobs needing a person, 1 failed by an operator, 3 failed runs and 1 processed job in
    the last hour, a running job whose lease ends in seconds, and 4 workers of which 3 are gone."""
    gone = [f"consumer-host{n}-{1000 + n}" for n in (2, 3, 4)]
    store.clock_offset = -timedelta(minutes=30)
    for n, worker in enumerate(gone):
        store.register_worker(worker, kind="consumer", queue="default", host=f"host{n + 2}", pid=1000 + n)
    store.clock_offset = -timedelta(minutes=20)
    store.register_worker(alive, kind="consumer", queue="default", host="host1", pid=4242)
    processed = store.put_item({"vendor": "globex", "readings": [{"vendor": "globex", "value": 3.0}]})
    _run_by(store, alive, processed, Status.PROCESSED, result={"vendor": "globex", "outliers": []})
    manual = []
    for error in (LONG_ERROR, "Traceback (most recent call last):\nKeyError: 'readings'"):
        job_id = store.put_item(PAYLOAD, max_attempts=1)
        _run_by(store, alive, job_id, Status.CRASHED, error=error)
        manual.append(job_id)
    failed = store.put_item(PAYLOAD, max_attempts=1)
    job = _claim(store, alive, failed)
    store.clock_offset += timedelta(seconds=2)  # its run took 2 s
    store.update_status(failed, Status.CRASHED, lease_id=job.lease_id, error=LONG_ERROR)
    store.clock_offset += timedelta(minutes=10)  # the operator fails it ten minutes later
    store.fail(failed, "partner sent a bad field; they resend it tomorrow")
    store.clock_offset = -timedelta(seconds=27)  # a 30 s lease claimed 27 s ago and not renewed since
    running = store.put_item({"vendor": "hooli", "readings": []})
    _claim(store, alive, running, lease_seconds=30)
    for minutes in (15, 9, 4):  # partners' jobs pile up behind it
        store.clock_offset = -timedelta(minutes=minutes)
        store.put_item({"vendor": "stark", "readings": [{"vendor": "stark", "value": minutes}]})
    store.clock_offset = timedelta(0)
    store.touch_worker(alive)
    return ThreeAm(manual, failed, processed, running, gone)


def _claim(store: PersistentQ, worker: str, job_id: int, lease_seconds: float | None = None) -> Job:
    job = store.get_item(worker, lease_seconds=lease_seconds)
    assert job is not None and job.id == job_id, f"expected to claim {job_id}, got {job}"
    return job


def _run_by(store: PersistentQ, worker: str, job_id: int, status: Status, **outcome: object) -> None:
    job = _claim(store, worker, job_id)
    store.update_status(job_id, status, lease_id=job.lease_id, **outcome)  # type: ignore[arg-type]
