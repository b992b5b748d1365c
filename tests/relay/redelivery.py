"""Measure what broker redeliveries do to long jobs: starts per job, and runs of one job at once.

    .venv/bin/python -m tests.relay.redelivery                        # the sample agent
    .venv/bin/python -m tests.relay.redelivery --agent ".venv/bin/python -m tests.relay.late_ack_agent"
    .venv/bin/python -m tests.relay.redelivery --sigterm              # and time an agent's exit mid-job
    .venv/bin/python -m tests.relay.redelivery --database-url postgresql+psycopg://postgres@127.0.0.1:5432/test

Starts a private RabbitMQ node whose consumer_timeout (--consumer-timeout) is far below each job's
work (--work-seconds), a real pq-relay and --agents agents (--agent is the command, to which
--name, --record, --queue, --amqp-url and --work-seconds are added), then watches until every job
is processed or --watch seconds have passed. It prints each job's starts (from the agents'
records) and the most runs of it at once. With --sigterm, the first agent to start a job gets a
SIGTERM mid-job, and the time until it exits is printed.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import signal
import sys
import tempfile
import time
import uuid
from pathlib import Path

import sqlalchemy

import pqueue
from pqueue import NewJob, Status
from relay.topology import Routing
from tests.programs import Process, start_program, stop_program
from tests.relay.private_rabbit import PrivateRabbit, server_script
from tests.relay.records import agent_runs, most_at_once, read_records, starts_per_job
from tests.support import wait_until


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--agents", type=int, default=3, help="more than --jobs: idle agents take redeliveries")
    parser.add_argument("--work-seconds", type=float, default=10.0, help="each job's work")
    parser.add_argument("--consumer-timeout", type=float, default=2.0, help="the broker's, in seconds")
    parser.add_argument("--watch", type=float, default=60.0, help="longest to watch, in seconds")
    parser.add_argument("--agent", default=f"{sys.executable} -m relay.agent", help="command starting one agent")
    parser.add_argument("--sigterm", action="store_true", help="SIGTERM the first agent to start a job")
    parser.add_argument("--database-url", help="default: a fresh SQLite file")
    parser.add_argument("--keep", action="store_true", help="keep the logs and records (their directory is printed)")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    script = server_script()
    if script is None:
        sys.stderr.write("no rabbitmq-server on this machine\n")
        return 2
    home = Path(tempfile.mkdtemp(prefix="pq-redelivery-"))
    rabbit = PrivateRabbit(home / "rabbit", consumer_timeout_ms=int(args.consumer_timeout * 1000))
    routing = Routing("redeliver" + uuid.uuid4().hex[:8])
    schema = "redeliver_" + uuid.uuid4().hex[:8] if args.database_url else None
    started: list[Process] = []
    store = None
    try:
        rabbit.start(script)
        env = {
            "PQ_HOME": str(home),
            "PQ_RELAY_QUEUE": routing.queue,
            "PQ_RELAY_WINDOW": str(args.jobs),
            "PQ_AMQP_URL": rabbit.url,
            "PQ_RELAY_LEASE_SECONDS": str(max(30.0, 3 * args.work_seconds)),
            "PQ_LEASE_SECONDS": "1",
            "PQ_RETRY_BACKOFF_SECONDS": "0",
        }
        if args.database_url:
            env.update(PQ_DATABASE_URL=args.database_url, PQ_DB_SCHEMA=schema or "")
        settings = pqueue.load_settings(
            home=home, database_url=args.database_url, db_schema=schema, relay_queue=routing.queue
        )
        store = pqueue.connect(settings=settings, migrate=True)
        ids = [put.id for put in store.put_items([NewJob({"n": n}, queue=routing.queue) for n in range(args.jobs)])]
        agents = [start_agent(args, env, home, f"a{number}") for number in range(args.agents)]
        started += agents
        wait_until(lambda: all(consuming(home / f"a{n}.log") for n in range(args.agents)), timeout=60)
        started.append(start_program(["pq-relay"], env, home / "relay.log"))
        began = time.monotonic()
        exit_seconds = sigterm_first_agent(agents, home) if args.sigterm else None

        def processed() -> int:
            assert store is not None
            return store.count_items(queue=routing.queue, status=Status.PROCESSED)

        while processed() < len(ids) and time.monotonic() - began < args.watch:
            time.sleep(0.2)
        report(args, home, processed(), len(ids), time.monotonic() - began, exit_seconds)
    finally:
        for process in started:
            stop_program(process)
        rabbit.stop()
        if store is not None:
            store.close()
        if schema and args.database_url:
            engine = sqlalchemy.create_engine(args.database_url)
            with engine.begin() as conn:
                conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            engine.dispose()
        if args.keep:
            print(f"  logs and records: {home}")
        else:
            shutil.rmtree(home, ignore_errors=True)
    return 0


def consuming(log: Path) -> bool:
    return log.exists() and "consuming" in log.read_text(errors="replace")


def start_agent(args: argparse.Namespace, env: dict[str, str], home: Path, name: str) -> Process:
    command = shlex.split(args.agent) + ["--name", name, "--record", str(home / f"{name}.jsonl")]
    command += ["--queue", env["PQ_RELAY_QUEUE"], "--amqp-url", env["PQ_AMQP_URL"]]
    command += ["--work-seconds", str(args.work_seconds)]
    return start_program(command, env, home / f"{name}.log")


def sigterm_first_agent(agents: list[Process], home: Path) -> float:
    """SIGTERM the first agent that starts a job; the seconds until it exited."""
    first = wait_until(lambda: next((line for line in read_records(home) if line["event"] == "start"), None))
    agent = agents[int(first["agent"][1:])]
    sent = time.monotonic()
    os.kill(agent.pid, signal.SIGTERM)
    agent.wait(120)
    return time.monotonic() - sent


def report(
    args: argparse.Namespace, home: Path, processed: int, total: int, watched: float, exit_seconds: float | None
) -> None:
    runs = agent_runs(read_records(home))
    starts = starts_per_job(runs)
    at_once = most_at_once(runs, time.time())
    print(
        f"agent {args.agent!r}, {args.agents} agents, {total} jobs of {args.work_seconds:g}s work, "
        f"consumer_timeout {args.consumer_timeout:g}s, watched {watched:.1f}s: {processed}/{total} processed"
    )
    for job_id in sorted(starts):
        print(f"  job {job_id}: {starts[job_id]} starts, at most {at_once[job_id]} at once")
    print(
        f"  most starts of one job: {max(starts.values(), default=0)}; most runs of one job at once: "
        f"{max(at_once.values(), default=0)}"
    )
    if exit_seconds is not None:
        print(f"  SIGTERM to exit of the agent working on the first job: {exit_seconds * 1000:.0f} ms")


if __name__ == "__main__":
    raise SystemExit(main())
