"""Jobs in every state, made through the library the way the programs make them."""

from __future__ import annotations

from dataclasses import dataclass

from pqueue import PersistentQ, Status

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
