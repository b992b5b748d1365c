"""Library-level producer and consumer processes (started with spawn) for the multi-process runs."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from multiprocessing.queues import Queue
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Event
from typing import Any

import pqueue
from bench.payloads import payload
from pqueue import DatabaseBusy, LeaseLost, Status

DEADLINE_SECONDS = 600.0


@dataclass
class Report:
    """What one process did: ids it stored or completed, errors it saw."""

    role: str
    ids: list[int] = field(default_factory=list)
    locked: int = 0
    lease_lost: int = 0
    finished_at: float = 0.0


def _is_locked(exc: Exception) -> bool:
    return isinstance(exc, DatabaseBusy) or "locked" in str(exc).lower()


def produce(
    settings_values: dict[str, Any], numbers: list[int], go: Event, ready: Queue[str], out: Queue[Report]
) -> None:
    """put_item each number, one job per transaction; count what surfaced as 'locked'."""
    store = pqueue.connect(settings=pqueue.load_settings(**settings_values))
    report = Report("producer")
    store.ping()
    ready.put("producer")
    go.wait()
    for number in numbers:
        while True:
            try:
                report.ids.append(store.put_item(payload(number)))
                break
            except Exception as exc:
                if not _is_locked(exc):
                    raise
                report.locked += 1
    report.finished_at = time.monotonic()
    store.close()
    out.put(report)


def consume(
    settings_values: dict[str, Any],
    worker_id: str,
    total: int,
    done: Synchronized[int],
    go: Event,
    ready: Queue[str],
    out: Queue[Report],
) -> None:
    """Claim and complete until `done` reaches total (or the deadline)."""
    store = pqueue.connect(settings=pqueue.load_settings(**settings_values))
    report = Report("consumer")
    store.ping()
    ready.put("consumer")
    go.wait()
    deadline = time.monotonic() + DEADLINE_SECONDS
    while done.value < total and time.monotonic() < deadline:
        try:
            _claim_and_complete(store, worker_id, done, report)
        except Exception as exc:
            if not _is_locked(exc):
                raise
            report.locked += 1
    report.finished_at = time.monotonic()
    store.close()
    out.put(report)


def _claim_and_complete(store: pqueue.PersistentQ, worker_id: str, done: Synchronized[int], report: Report) -> None:
    job = store.get_item(worker_id)
    if job is None:
        store.wait_for_work(0.05)
        return
    try:
        store.update_status(job.id, Status.PROCESSED, lease_id=job.lease_id, result={"ok": True})
    except LeaseLost:
        report.lease_lost += 1
        return
    report.ids.append(job.id)
    with done.get_lock():
        done.value += 1
