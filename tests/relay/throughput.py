"""Measure the relay's throughput: jobs per second through RabbitMQ with no-op agents.

    .venv/bin/python -m tests.relay.throughput --jobs 2000 --agents 2
    .venv/bin/python -m tests.relay.throughput --database-url postgresql+psycopg://postgres@127.0.0.1:5432/test

Starts a real pq-relay and real sample agents (`--work-seconds 0 --fail-rate 0`), puts the jobs
first, and times from the first claim to the last finish using the database's own timestamps.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import uuid
from pathlib import Path

import sqlalchemy

import pqueue
from pqueue import NewJob, Status
from relay.topology import Routing
from tests.programs import start_program, stop_program
from tests.relay.rabbit import Rabbit, rabbit_url
from tests.support import wait_until


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--agents", type=int, default=2)
    parser.add_argument("--window", type=int, default=50)
    parser.add_argument("--no-processing", action="store_true", help="agents send only the final status")
    parser.add_argument("--database-url", help="default: a fresh SQLite file")
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="pq-relay-bench-"))
    routing = Routing("bench" + uuid.uuid4().hex[:8])
    schema = "bench_" + uuid.uuid4().hex[:8] if args.database_url else None
    env = {
        "PQ_HOME": str(home),
        "PQ_RELAY_QUEUE": routing.queue,
        "PQ_RELAY_WINDOW": str(args.window),
        "PQ_AMQP_URL": rabbit_url(),
        "PQ_RELAY_LEASE_SECONDS": "600",
    }
    if args.database_url:
        env.update(PQ_DATABASE_URL=args.database_url, PQ_DB_SCHEMA=schema or "")
    settings = pqueue.load_settings(
        home=home, database_url=args.database_url, db_schema=schema, relay_queue=routing.queue
    )
    store = pqueue.connect(settings=settings, migrate=True)
    rabbit = Rabbit(routing)
    started = []
    try:
        store.put_items([NewJob({"n": n}, queue=routing.queue) for n in range(args.jobs)])
        agent_args = ["--work-seconds", "0", "--fail-rate", "0"]
        agent_args += ["--queue", routing.queue, "--amqp-url", rabbit_url()]
        if args.no_processing:
            agent_args.append("--no-processing")
        for number in range(args.agents):
            command = [sys.executable, "-m", "relay.agent", "--name", f"a{number}", *agent_args]
            started.append(start_program(command, env, home / f"a{number}.log"))
        for number in range(args.agents):
            log = home / f"a{number}.log"

            def consuming(log: Path = log) -> bool:
                return log.exists() and "consuming" in log.read_text()

            wait_until(consuming, timeout=60)
        started.append(start_program(["pq-relay"], env, home / "relay.log"))
        done = store.count_items
        wait_until(lambda: done(queue=routing.queue, status=Status.PROCESSED) == args.jobs, timeout=600)
        jobs = _all(store, routing.queue)
        first = min(job.started_at for job in jobs if job.started_at)
        last = max(job.finished_at for job in jobs if job.finished_at)
        seconds = (last - first).total_seconds()
        backend = "PostgreSQL" if args.database_url else "SQLite"
        processing = "final status only" if args.no_processing else "processing + final status"
        print(
            f"{args.jobs} jobs, {backend}, window {args.window}, {args.agents} no-op agents ({processing}): "
            f"{seconds:.2f}s from first claim to last finish = {args.jobs / seconds:.0f} jobs/s"
        )
    finally:
        for process in started:
            stop_program(process)
        rabbit.delete_queues()
        rabbit.close()
        store.close()
        if schema and args.database_url:
            engine = sqlalchemy.create_engine(args.database_url)
            with engine.begin() as conn:
                conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            engine.dispose()
        shutil.rmtree(home, ignore_errors=True)
    return 0


def _all(store: pqueue.PersistentQ, queue: str) -> list[pqueue.Job]:
    items: list[pqueue.Job] = []
    cursor = None
    while True:
        page = store.get_all_items(queue=queue, limit=1000, cursor=cursor)
        items += page.items
        if page.next_cursor is None:
            return items
        cursor = page.next_cursor


if __name__ == "__main__":
    raise SystemExit(main())
