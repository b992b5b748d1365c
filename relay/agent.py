"""`python -m relay.agent`: a sample remote agent, to see the relay's whole flow.

It takes jobs from the outbox, reports `processing`, "works" for a while, then reports `success`
(echoing the payload) or, at random with a seeded generator, `error`. A payload object with
`"fail": true` always errors, to show retries ending in manual_intervention. It acks a job
message only after its final status was confirmed by the broker, so a killed agent's job is
redelivered to another agent. With --record, it appends one JSON line per start and finish
(job id, lease id, agent, time) so a test can check who ran what, and when.

Like a real remote agent it needs nothing of pqueue: only the broker's URL and the queue name,
from its command line.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from relay import broker
from relay.messages import status_message
from relay.topology import Routing, declare

log = logging.getLogger("relay.agent")
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"  # the same lines as every pqueue program


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m relay.agent", description=__doc__.splitlines()[0])
    parser.add_argument("--queue", default="remote", help="pqueue queue the relay feeds (its PQ_RELAY_QUEUE)")
    parser.add_argument(
        "--amqp-url", default="amqp://guest:guest@127.0.0.1:5672/%2F", help="RabbitMQ to use (the relay's PQ_AMQP_URL)"
    )
    parser.add_argument("--name", default="agent", help="this agent's name in status messages and records")
    parser.add_argument("--fail-rate", type=float, default=0.0, help="chance (0..1) that a job reports an error")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random failures")
    parser.add_argument("--work-seconds", type=float, default=0.05, help="how long each job 'works'")
    parser.add_argument("--prefetch", type=int, default=1, help="job messages taken from the broker at once")
    parser.add_argument(
        "--no-processing", action="store_true", help="send only the final status (no `processing` report)"
    )
    parser.add_argument("--record", type=Path, help="append a JSON line per job start and finish to this file")
    args = parser.parse_args(argv)
    if not 0.0 <= args.fail_rate <= 1.0:
        parser.error("--fail-rate must be between 0 and 1")
    if args.work_seconds < 0:
        parser.error("--work-seconds must not be negative")
    if args.prefetch < 1:
        parser.error("--prefetch must be at least 1")
    return args


class Agent:
    """Works through job messages one at a time and reports their status."""

    def __init__(self, args: argparse.Namespace, routing: Routing) -> None:
        self.args = args
        self.routing = routing
        self.random = random.Random(args.seed)
        self.done = 0

    def on_job(self, channel: Any, method: Any, properties: Any, body: bytes) -> None:
        try:
            job = json.loads(body)
            job_id, lease_id = int(job["job_id"]), int(job["lease_id"])
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("dropped an unreadable job message (%s)", exc)
            channel.basic_reject(delivery_tag=method.delivery_tag, requeue=False)
            return
        self.record("start", job_id, lease_id)
        if not self.args.no_processing:
            self.report(channel, job_id, lease_id, "processing")
        self.work(channel, job_id, lease_id, float(job.get("lease_seconds") or 600))
        payload = job.get("payload")
        forced = isinstance(payload, dict) and payload.get("fail") is True
        failed = forced or self.random.random() < self.args.fail_rate
        # Recorded before the report: once the relay has it, the job may be sent out again.
        self.record("finish", job_id, lease_id, "error" if failed else "success")
        if failed:
            self.report(channel, job_id, lease_id, "error", error=f"{self.args.name}: simulated failure")
        else:
            self.report(channel, job_id, lease_id, "success", result={"agent": self.args.name, "echo": payload})
        channel.basic_ack(delivery_tag=method.delivery_tag)
        self.done += 1

    def work(self, channel: Any, job_id: int, lease_id: int, lease_seconds: float) -> None:
        """Sleep the work time, saying `processing` every third of the lease so it never runs out."""
        deadline = time.monotonic() + self.args.work_seconds
        next_report = float("inf") if self.args.no_processing else time.monotonic() + lease_seconds / 3
        while (left := deadline - time.monotonic()) > 0:
            channel.connection.sleep(min(left, max(0.0, next_report - time.monotonic())))
            if time.monotonic() >= next_report:
                self.report(channel, job_id, lease_id, "processing")
                next_report = time.monotonic() + lease_seconds / 3

    def report(self, channel: Any, job_id: int, lease_id: int, status: str, **extra: Any) -> None:
        body = status_message(job_id, lease_id, status, agent=self.args.name, **extra)
        broker.publish(channel, self.routing.inbox_key, body, message_type="pq.status", app_id=self.args.name)

    def record(self, event: str, job_id: int, lease_id: int, outcome: str | None = None) -> None:
        if self.args.record is None:
            return
        line = {"event": event, "job_id": job_id, "lease_id": lease_id, "agent": self.args.name, "t": time.time()}
        if outcome:
            line["outcome"] = outcome
        with self.args.record.open("a") as handle:
            handle.write(json.dumps(line) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Consume the outbox until SIGTERM or SIGINT, reconnecting with backoff."""
    args = parse_args(argv)
    logging.basicConfig(stream=sys.stdout, level=logging.INFO, format=LOG_FORMAT, force=True)
    # pika logs each connection step, and each drop four times over; the agent logs one line.
    logging.getLogger("pika").setLevel(logging.CRITICAL)
    routing = Routing(args.queue)
    try:
        params = broker.parameters(args.amqp_url)
    except broker.BrokerUrlError as exc:
        log.error("%s", exc)
        return 2
    where = broker.describe(args.amqp_url)
    agent = Agent(args, routing)
    stopping = False

    def request_stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    backoff = broker.Backoff()
    while not stopping:
        connection = None
        try:
            connection, channel = broker.open_channel(params)
            declare(channel, routing)
            channel.basic_qos(prefetch_count=args.prefetch)
            channel.basic_consume(queue=routing.outbox_queue, on_message_callback=agent.on_job, auto_ack=False)
            log.info("%s consuming %s at %s", args.name, routing.outbox_queue, where)
            backoff.reset()
            while not stopping:
                connection.process_data_events(time_limit=0.2)
        except broker.BROKER_ERRORS as exc:
            delay = backoff.next()
            log.warning("RabbitMQ at %s: %s: %s; retrying in %.1fs", where, type(exc).__name__, exc, delay)
            broker.pause(delay, lambda: stopping)
        finally:
            broker.close_quietly(connection)
    log.info("%s stopped after %d jobs", args.name, agent.done)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
