"""`python -m relay.agent`: a sample remote agent, to see the relay's whole flow.

It takes one job message at a time from the outbox, makes the job its own (below), reports
`processing`, "works" for a while, then reports `success` (echoing the payload) or, at random
with a seeded generator, `error`. A payload object with `"fail": true` always errors, to show
retries ending in manual_intervention. On SIGTERM or SIGINT it stops working at once, reports
`released` (the relay gives the job back without spending an attempt, and sends it to another
agent) and exits. With --record, it appends one JSON line per start and finish (job id, lease id,
agent, time) so a test can check who ran what, and when.

Why it acknowledges a job message before working on it: RabbitMQ redelivers a message that its
consumer holds unacknowledged past consumer_timeout (30 minutes by default), or whose channel
or connection closes. An agent that acknowledged only after its work would see a long job started
a second time on another agent while it still runs, and the message then bounce between agents
for ever. So the agent
1. stops consuming (basic.cancel), so nothing more is sent to it while it works;
2. acknowledges the message;
3. waits for the broker's reply to a later method on the same channel (a channel's methods are
   handled in order): from then on the broker holds no copy to redeliver, whatever happens to
   the channel, the connection or the agent;
4. only then starts. If anything fails before, it does not start: either the ack did not arrive
   and the broker redelivers the message (nobody started it), or it did and the lease covers it.
From then on the job's lease in pqueue holds it, not the broker: `processing` renews it, and if
the agent dies the lease runs out and the relay's rescue sends the job again under a new lease.
A lost connection does not stop the work: the agent reconnects to report.

Like a real remote agent it needs nothing of pqueue: only the broker's URL and the queue name,
from its command line.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import random
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import pika

from relay import broker
from relay.messages import status_message
from relay.topology import Routing, declare

log = logging.getLogger("relay.agent")
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"  # the same lines as every pqueue program
STEP_SECONDS = 0.1  # longest the agent works or waits before it looks at a stop request again
STOP_REPORT_SECONDS = 5.0  # once asked to stop, how long it keeps trying to send a job's last status


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
    parser.add_argument(
        "--no-processing", action="store_true", help="send only the final status (no `processing` report)"
    )
    parser.add_argument("--record", type=Path, help="append a JSON line per job start and finish to this file")
    args = parser.parse_args(argv)
    if not 0.0 <= args.fail_rate <= 1.0:
        parser.error("--fail-rate must be between 0 and 1")
    if args.work_seconds < 0:
        parser.error("--work-seconds must not be negative")
    return args


@dataclass(frozen=True)
class Claim:
    """A job this agent has made its own: the broker will not hand it to anyone else."""

    job_id: int
    lease_id: int
    lease_seconds: float
    payload: Any


class Agent:
    """Works through job messages one at a time and reports their status."""

    def __init__(
        self, args: argparse.Namespace, routing: Routing, params: pika.URLParameters, should_stop: Callable[[], bool]
    ) -> None:
        self.args = args
        self.routing = routing
        self.params = params
        self.where = broker.describe(args.amqp_url)
        self.should_stop = should_stop
        self.random = random.Random(args.seed)
        self.done = 0
        self.connection: Any = None
        self.channel: Any = None

    def run(self) -> None:
        """Take and work jobs until asked to stop, reconnecting with backoff."""
        backoff = broker.Backoff()
        while not self.should_stop():
            try:
                claim = self.take()
            except broker.BROKER_ERRORS as exc:
                delay = backoff.next()
                self.disconnect(f"{exc}; retrying in {delay:.1f}s")
                broker.pause(delay, self.should_stop)
                continue
            backoff.reset()
            if claim is not None:
                self.work_through(claim)
        self.disconnect()

    # -- taking a job -------------------------------------------------------------------------

    def take(self) -> Claim | None:
        """Wait for one job message and make it this agent's; None when asked to stop."""
        channel = self.connected()
        for method, _, body in channel.consume(self.routing.outbox_queue, inactivity_timeout=STEP_SECONDS):
            if method is None and not self.should_stop():
                continue
            channel.cancel()  # nothing more comes while this agent works: idle agents get the waiting jobs
            if method is None:
                return None
            if self.should_stop():
                channel.basic_reject(delivery_tag=method.delivery_tag, requeue=True)
                return None
            return self.accept(channel, method.delivery_tag, body)
        return None  # the broker cancelled the consumer (its queue was deleted): consume again

    def accept(self, channel: Any, delivery_tag: int, body: bytes) -> Claim | None:
        """Acknowledge the message, and return once the broker has surely handled the ack."""
        try:
            job = json.loads(body)
            lease_seconds = float(job.get("lease_seconds") or 600)
            claim = Claim(int(job["job_id"]), int(job["lease_id"]), lease_seconds, job.get("payload"))
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("dropped an unreadable job message (%s)", exc)
            channel.basic_reject(delivery_tag=delivery_tag, requeue=False)
            return None
        channel.basic_ack(delivery_tag=delivery_tag)
        # basic.qos has a reply, and the broker handles a channel's methods in order: once it
        # answers, the ack has been applied and no timeout or close can bring the message back.
        channel.basic_qos(prefetch_count=1)
        return claim

    # -- working on it ------------------------------------------------------------------------

    def work_through(self, claim: Claim) -> None:
        """Work on the job, then send its last status: the outcome, or `released` if stopped."""
        self.record("start", claim)
        if not self.work(claim):
            self.record("finish", claim, "released")
            self.deliver(claim, "released")
            log.info("%s gave job %d back unfinished: asked to stop", self.args.name, claim.job_id)
            return
        forced = isinstance(claim.payload, dict) and claim.payload.get("fail") is True
        failed = forced or self.random.random() < self.args.fail_rate
        # Recorded before the report: once the relay has it, the job may be sent out again.
        self.record("finish", claim, "error" if failed else "success")
        if failed:
            self.deliver(claim, "error", error=f"{self.args.name}: simulated failure")
        else:
            self.deliver(claim, "success", result={"agent": self.args.name, "echo": claim.payload})
        self.done += 1

    def work(self, claim: Claim) -> bool:
        """'Work' for --work-seconds, saying `processing` now and every third of the lease;
        False when asked to stop first."""
        deadline = time.monotonic() + self.args.work_seconds
        next_report = float("inf") if self.args.no_processing else time.monotonic()
        while not self.should_stop():
            now = time.monotonic()
            if now >= next_report:
                self.try_report(claim, "processing")
                next_report = now + claim.lease_seconds / 3
            if now >= deadline:
                return True
            self.wait(min(STEP_SECONDS, deadline - now, max(0.0, next_report - now)))
        return False

    def wait(self, seconds: float) -> None:
        """Sleep, answering the broker's heartbeats while connected; a lost connection is noted,
        and the work goes on."""
        if self.connection is None:
            time.sleep(seconds)
            return
        try:
            self.connection.sleep(seconds)
        except broker.BROKER_ERRORS as exc:
            self.disconnect(f"{exc}; working on, reconnecting to report")

    # -- reporting ----------------------------------------------------------------------------

    def try_report(self, claim: Claim, status: str) -> None:
        """Report once; a failure waits for the next report (the lease still has two thirds left)."""
        try:
            self.report(claim, status)
        except broker.BROKER_ERRORS as exc:
            self.disconnect(f"{exc}; could not report {status} for job {claim.job_id}")

    def deliver(self, claim: Claim, status: str, **extra: Any) -> None:
        """Report a last status until the broker confirms it; once asked to stop, for a few
        seconds more at most (then the lease runs out and the relay sends the job again)."""
        backoff = broker.Backoff()
        give_up = math.inf
        while True:
            try:
                self.report(claim, status, **extra)
                return
            except broker.BROKER_ERRORS as exc:
                self.disconnect(f"{exc}; could not report {status} for job {claim.job_id} yet")
            if self.should_stop():
                give_up = min(give_up, time.monotonic() + STOP_REPORT_SECONDS)
            left = give_up - time.monotonic()
            if left <= 0:
                log.warning("%s stopping without reporting %s for job %d", self.args.name, status, claim.job_id)
                return
            # Until a stop request, a pause ends early on one; after it, the retries run out the clock.
            broker.pause(min(backoff.next(), left), self.should_stop if math.isinf(left) else _never)

    def report(self, claim: Claim, status: str, **extra: Any) -> None:
        body = status_message(claim.job_id, claim.lease_id, status, agent=self.args.name, **extra)
        broker.publish(self.connected(), self.routing.inbox_key, body, message_type="pq.status", app_id=self.args.name)

    def record(self, event: str, claim: Claim, outcome: str | None = None) -> None:
        if self.args.record is None:
            return
        line = {
            "event": event,
            "job_id": claim.job_id,
            "lease_id": claim.lease_id,
            "agent": self.args.name,
            "t": time.time(),
        }
        if outcome:
            line["outcome"] = outcome
        with self.args.record.open("a") as handle:
            handle.write(json.dumps(line) + "\n")

    # -- the connection -----------------------------------------------------------------------

    def connected(self) -> Any:
        """The open channel, connecting (and declaring the routing) first if there is none."""
        if self.channel is None:
            self.connection, self.channel = broker.open_channel(self.params)
            try:
                declare(self.channel, self.routing)
                self.channel.basic_qos(prefetch_count=1)
            except BaseException:
                self.disconnect()
                raise
            log.info("%s consuming %s at %s", self.args.name, self.routing.outbox_queue, self.where)
        return self.channel

    def disconnect(self, why: str | None = None) -> None:
        if why is not None:
            log.warning("RabbitMQ at %s: %s", self.where, why)
        broker.close_quietly(self.connection)
        self.connection = self.channel = None


def _never() -> bool:
    return False


def main(argv: Sequence[str] | None = None) -> int:
    """Work through the outbox until SIGTERM or SIGINT."""
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
    stopping = False

    def request_stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    agent = Agent(args, routing, params, lambda: stopping)
    agent.run()
    log.info("%s stopped after %d jobs", args.name, agent.done)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
