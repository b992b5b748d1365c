"""pqueue measured through its library calls: puts, claim + complete, and several processes at once."""

from __future__ import annotations

import gc
import multiprocessing
import queue
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pqueue
from bench.databases import Databases, Target
from bench.payloads import payload
from bench.workers import Report, consume, produce
from pqueue import NewJob, PersistentQ, Status

BATCH = 1000
WORKER = "bench"


def open_store(target: Target, **overrides: Any) -> PersistentQ:
    return pqueue.connect(settings=target.settings(**overrides), migrate=True)


def durability(backend: str, synchronous: bool = True) -> str:
    """The words a row uses for pqueue's durability setting."""
    if backend == "sqlite":
        return "WAL, synchronous=FULL" if synchronous else "WAL, synchronous=NORMAL"
    return "fsync=on, synchronous_commit=on" if synchronous else "synchronous_commit=off"


def fill(store: PersistentQ, count: int) -> None:
    """Put count jobs in batches (not timed)."""
    for start in range(0, count, BATCH):
        store.put_items([NewJob(payload(n)) for n in range(start, min(count, start + BATCH))])


def put_one(databases: Databases, backend: str, n: int) -> Callable[[], float]:
    def run() -> float:
        target = databases.fresh(backend, "put_one")
        store = open_store(target)
        try:
            started = time.perf_counter()
            for number in range(n):
                store.put_item(payload(number))
            return n / (time.perf_counter() - started)
        finally:
            store.close()
            databases.drop(target)

    return run


def put_batch(databases: Databases, backend: str, n: int) -> Callable[[], float]:
    def run() -> float:
        target = databases.fresh(backend, "put_batch")
        store = open_store(target)
        try:
            batches = [[NewJob(payload(n)) for n in range(s, min(n, s + BATCH))] for s in range(0, n, BATCH)]
            gc.collect()  # the batches just built would otherwise trigger a full collection inside the timing
            started = time.perf_counter()
            for batch in batches:
                store.put_items(batch)
            return n / (time.perf_counter() - started)
        finally:
            store.close()
            databases.drop(target)

    return run


def claim_complete(databases: Databases, backend: str, n: int) -> Callable[[], float]:
    """get_item + update_status: two transactions per job."""
    return _timed_drain(databases, backend, n, "claim", lambda store: drain(store, n))


def finish_and_claim(databases: Databases, backend: str, n: int) -> Callable[[], float]:
    """get_item once, then finish_and_claim: one transaction per job."""
    return _timed_drain(databases, backend, n, "finish_claim", drain_one_transaction)


def _timed_drain(
    databases: Databases, backend: str, n: int, label: str, loop: Callable[[PersistentQ], int]
) -> Callable[[], float]:
    """jobs/s of `loop` draining n stored jobs from a fresh database."""

    def run() -> float:
        target = databases.fresh(backend, label)
        store = open_store(target)
        try:
            fill(store, n)
            started = time.perf_counter()
            done = loop(store)
            elapsed = time.perf_counter() - started
            if done != n:
                raise RuntimeError(f"claimed {done} of {n} jobs")
            return n / elapsed
        finally:
            store.close()
            databases.drop(target)

    return run


def drain_one_transaction(store: PersistentQ) -> int:
    """get_item once, then finish_and_claim (the outcome and the next claim in one transaction)
    until it claims nothing."""
    done = 0
    job = store.get_item(WORKER)
    while job is not None:
        _, job = store.finish_and_claim(
            job.id, Status.PROCESSED, lease_id=job.lease_id, worker_id=WORKER, result={"ok": True}
        )
        done += 1
    return done


def drain(store: PersistentQ, limit: int) -> int:
    """get_item + update_status until nothing is claimable or limit jobs are done."""
    done = 0
    while done < limit:
        job = store.get_item(WORKER)
        if job is None:
            break
        store.update_status(job.id, Status.PROCESSED, lease_id=job.lease_id, result={"ok": True})
        done += 1
    return done


@dataclass
class ProcessRun:
    """The outcome of one multi-process run."""

    jobs_per_second: float
    lost: int
    duplicated: int
    locked: int
    lease_lost: int
    peak_running: int


def peak_overlap(intervals: list[tuple[float, float]]) -> int:
    """The most intervals open at one moment."""
    edges = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    running = peak = 0
    for _, step in edges:
        running += step
        peak = max(peak, running)
    return peak


def processes(target: Target, producers: int, consumers: int, total: int, seats: int, prefill: bool) -> ProcessRun:
    """Producers put `total` jobs (or they are put beforehand) while consumers claim and complete them."""
    values: dict[str, Any] = {
        "home": target.home,
        "database_url": target.url,
        "max_running": seats,
        "log_level": "WARNING",
    }
    store = pqueue.connect(settings=pqueue.load_settings(**values), migrate=True)
    if prefill:
        fill(store, total)
    context = multiprocessing.get_context("spawn")
    go, ready, out = context.Event(), context.Queue(), context.Queue()
    done = context.Value("i", 0)
    shares = [list(range(i, total, producers)) for i in range(producers)] if producers else []
    started = [
        context.Process(target=produce, args=(values, share, go, ready, out), daemon=True) for share in shares
    ] + [
        context.Process(target=consume, args=(values, f"c{i}", total, done, go, ready, out), daemon=True)
        for i in range(consumers)
    ]
    for process in started:
        process.start()
    try:
        _wait_ready(ready, started)
        began = time.monotonic()
        go.set()
        reports: list[Report] = [out.get(timeout=900) for _ in started]
    finally:
        for process in started:
            process.join(10)
            if process.is_alive():
                process.kill()
    finished = max(r.finished_at for r in reports if r.role == "consumer")
    return _outcome(store, reports, total, prefill, finished - began)


def held_intervals(store: PersistentQ) -> list[tuple[float, float]]:
    """(started_at, finished_at) of every processed job, on the database's clock.

    A claim waits for the seat (SQLite's write lock, PostgreSQL's advisory lock) and reads the
    clock after it, so a job claimed after another's seat was freed starts after that one
    finished: overlapping intervals are jobs that really held seats at the same time.
    """
    intervals = []
    cursor = None
    while True:
        page = store.get_all_items(status=Status.PROCESSED, limit=1000, cursor=cursor, oldest_first=True)
        for job in page.items:
            if job.started_at is not None and job.finished_at is not None:
                intervals.append((job.started_at.timestamp(), job.finished_at.timestamp()))
        if page.next_cursor is None:
            return intervals
        cursor = page.next_cursor


def _wait_ready(ready: Any, started: list[Any], timeout: float = 180) -> None:
    """Wait until every process has connected; fail at once when one of them died."""
    deadline = time.monotonic() + timeout
    waiting = len(started)
    while waiting:
        dead = [p.exitcode for p in started if p.exitcode not in (None, 0)]
        if dead or time.monotonic() > deadline:
            raise RuntimeError(f"a benchmark process did not start (exit codes {dead})")
        try:
            ready.get(timeout=0.5)
            waiting -= 1
        except queue.Empty:
            continue


def _outcome(store: PersistentQ, reports: list[Report], total: int, prefill: bool, elapsed: float) -> ProcessRun:
    completed = Counter(i for r in reports if r.role == "consumer" for i in r.ids)
    stats = store.stats()
    processed = stats.total(Status.PROCESSED)
    acknowledged = total if prefill else sum(len(r.ids) for r in reports if r.role == "producer")
    peak = peak_overlap(held_intervals(store))
    store.close()
    return ProcessRun(
        jobs_per_second=processed / elapsed,
        lost=acknowledged - processed,
        duplicated=sum(count - 1 for count in completed.values() if count > 1),
        locked=sum(r.locked for r in reports),
        lease_lost=sum(r.lease_lost for r in reports),
        peak_running=peak,
    )
