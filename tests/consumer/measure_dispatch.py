"""Measure the consumer's dispatch latency and the gap between jobs, on SQLite and PostgreSQL.

    PQ_TEST_POSTGRES_URL=postgresql+psycopg://postgres@127.0.0.1:5432/test \\
        .venv/bin/python -m tests.consumer.measure_dispatch [--idle 40] [--long-idle 5] [--backlog 200]

Idle dispatch: a real `pq-consumer` waits with nothing to do; one job is enqueued; latency is
from put_item returning (the job committed) to the algorithm's first line running, in the job
process. Short idle pauses (0.5 s) and long ones (6 s: SQLite's poll has slowed down by then).
Backlog gap: many jobs wait; the gap is from one run's last line to the next run's first line
(recording the result, claiming the next job, handing it to the warm process).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import pqueue
from pqueue import PersistentQ, Status
from tests.consumer.algos import read_log
from tests.postgres import drop_schema
from tests.programs import start_program, stop_program
from tests.support import BIN, wait_until


def percentiles(samples: list[float]) -> str:
    ms = sorted(s * 1000 for s in samples)
    p99 = ms[min(len(ms) - 1, round(0.99 * (len(ms) - 1)))]
    return f"n={len(ms)} p50={statistics.median(ms):.1f}ms p99={p99:.1f}ms max={ms[-1]:.1f}ms"


def idle_latency(q: PersistentQ, log: Path, count: int, pause: float) -> list[float]:
    samples = []
    for n in range(count):
        time.sleep(pause)
        tag = f"idle-{pause}-{n}"
        job_id = q.put_item({"do": "ok", "log": str(log), "tag": tag})
        committed = time.time()

        def processed(job_id: int = job_id) -> bool:
            return q.get_job(job_id).status == Status.PROCESSED

        wait_until(processed, timeout=30)
        start_event = next(e for e in read_log(log) if e["tag"] == tag)
        samples.append(start_event["t"] - committed)
    return samples


def backlog_gaps(q: PersistentQ, log: Path, count: int) -> tuple[list[float], float]:
    q.pause()
    ids = [q.put_item({"do": "sleep", "seconds": 0, "log": str(log), "tag": f"b-{n}"}) for n in range(count)]
    q.resume()
    wait_until(lambda: q.get_job(ids[-1]).status == Status.PROCESSED, timeout=600)
    events = [e for e in read_log(log) if str(e["tag"]).startswith("b-")]
    starts = {e["tag"]: e["t"] for e in events if e["event"] == "start"}
    ends = {e["tag"]: e["t"] for e in events if e["event"] == "end"}
    gaps = [starts[f"b-{n + 1}"] - ends[f"b-{n}"] for n in range(count - 1)]
    elapsed = ends[f"b-{count - 1}"] - starts["b-0"]
    return gaps, count / elapsed


def measure(name: str, env: dict[str, str], workdir: Path, args: argparse.Namespace) -> None:
    settings = pqueue.load_settings(
        home=Path(env["PQ_HOME"]), database_url=env["PQ_DATABASE_URL"], db_schema=env.get("PQ_DB_SCHEMA")
    )
    q = pqueue.connect(settings=settings, migrate=True)
    log = workdir / f"{name}.jsonl"
    consumer = start_program(
        [str(BIN / "pq-consumer")],
        {**env, "PQ_ALGORITHM": "tests.consumer.algos:act", "PQ_LOG_LEVEL": "WARNING"},
        workdir / f"{name}.log",
    )
    try:
        wait_until(lambda: q.workers(), timeout=60, what="the consumer to start")
        short = idle_latency(q, log, args.idle, 0.5)
        long = idle_latency(q, log, args.long_idle, 6.0)
        gaps, rate = backlog_gaps(q, log, args.backlog)
    finally:
        stop_program(consumer)
        q.close()
    print(f"{name}: idle dispatch (0.5s idle) {percentiles(short)}")
    print(f"{name}: idle dispatch (6s idle)   {percentiles(long)}")
    print(f"{name}: backlog gap between jobs  {percentiles(gaps)}; {rate:.1f} jobs/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--idle", type=int, default=40)
    parser.add_argument("--long-idle", type=int, default=5)
    parser.add_argument("--backlog", type=int, default=200)
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="pq-measure-")  # kept: the consumers' logs are there
    print(f"consumer logs: {tmp}")
    workdir = Path(tmp)
    sqlite_env = {"PQ_HOME": tmp, "PQ_DATABASE_URL": f"sqlite:///{workdir / 'var' / 'pqueue.db'}"}
    measure("sqlite", sqlite_env, workdir, args)
    url = os.environ.get("PQ_TEST_POSTGRES_URL")
    if url:
        schema = "m_" + uuid.uuid4().hex[:12]
        try:
            measure("postgresql", {"PQ_HOME": tmp, "PQ_DATABASE_URL": url, "PQ_DB_SCHEMA": schema}, workdir, args)
        finally:
            drop_schema(url, schema)


if __name__ == "__main__":
    main()
