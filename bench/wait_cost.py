"""The cost of one waiting job's `wait` (GET /jobs/{id}) on a table filled as bench's size_wait row
fills it (bench/tablesize.py): SIZE jobs, half of them waiting, over PARTNERS partners.

    PYTHONPATH=. .venv/bin/python -m bench.wait_cost sqlite 200000 100 [CALLS]

prints the median, least and most milliseconds of CALLS waits of the newest waiting job: simulated
afresh for every request (PQ_WAIT_SNAPSHOT_SECONDS=0, or any revision before the kept line), from
the kept line, and for a job submitted after the line. A quick look for one change, not a bench
row: the machine's load is in the numbers.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench import tablesize
from bench.databases import Databases
from bench.library import open_store
from pqueue import PersistentQ, Settings, Status

SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"


def timed(store: PersistentQ, job_id: int, calls: int) -> list[float]:
    took = []
    for _ in range(calls):
        started = time.perf_counter()
        store.wait(job_id)
        took.append((time.perf_counter() - started) * 1000)
    return sorted(took)


def show(label: str, took: list[float]) -> None:
    median = statistics.median(took)
    print(f"  {label}: median {median:.2f} ms, least {took[0]:.2f}, most {took[-1]:.2f} (n={len(took)})", flush=True)


def main(backend: str, size: int, partners: int, calls: int) -> None:
    kept = "wait_snapshot_seconds" in Settings.model_fields
    with tempfile.TemporaryDirectory() as workdir:
        databases = Databases(SERVER, Path(workdir))
        try:
            target, store, seconds = tablesize.open_filled(databases, backend, size, partners)
            newest = store.get_all_items(status=Status.UNPROCESSED, limit=1).items[0].id
            # A live consumer serves the queue, as bench's rows have it (the wait then has its p50 and p90).
            store.register_worker(
                tablesize.SERVING, kind="consumer", queue=store.settings.queue, host="bench", pid=os.getpid()
            )
            waiting = f"{size // 2:,} of {size:,} jobs waiting"
            print(f"{backend}: {waiting}, {partners} partner(s), filled in {seconds:.0f} s")
            fresh = open_store(target, wait_snapshot_seconds=0) if kept else store
            fresh.wait(newest)
            show("simulated afresh for every request", timed(fresh, newest, calls))
            if kept:
                store.wait(newest)
                show("from the kept line (PQ_WAIT_SNAPSHOT_SECONDS=1)", timed(store, newest, calls))
                newer = store.put_item({"n": -1}, partner=store.get_job(newest).partner)
                show("a job submitted after the line", timed(store, newer, calls))
                fresh.close()
            store.close()
            databases.drop(target)
        finally:
            databases.close()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]) if len(sys.argv) > 4 else 20)
