"""An agent that acknowledges its job message only after the work, as the sample agent once did.

    python -m tests.relay.late_ack_agent --amqp-url URL --queue Q --name a1 --record FILE --work-seconds 30

The tests run it to show what the sample agent's protocol prevents: RabbitMQ redelivers a message
held unacknowledged past consumer_timeout to another agent, which starts the job while the first
still works on it. It writes the sample agent's --record lines, so the same checks read both.
"""

from __future__ import annotations

import argparse
import json
import signal
import time
from pathlib import Path
from types import FrameType
from typing import Any

import pika

from relay import broker
from relay.messages import status_message
from relay.topology import Routing, declare

stopping = False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--amqp-url", required=True)
    parser.add_argument("--queue", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--record", type=Path, required=True)
    parser.add_argument("--work-seconds", type=float, default=30.0)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _stop)
    routing = Routing(args.queue)

    def on_job(channel: Any, method: Any, properties: Any, body: bytes) -> None:
        job = json.loads(body)
        _record(args, "start", job)
        deadline = time.monotonic() + args.work_seconds
        while time.monotonic() < deadline and not stopping:
            channel.connection.sleep(0.1)  # answers heartbeats; the broker closing the channel goes unseen
        _record(args, "finish", job, "success")
        body = status_message(job["job_id"], job["lease_id"], "success", result=None, agent=args.name)
        broker.publish(channel, routing.inbox_key, body, message_type="pq.status")
        channel.basic_ack(delivery_tag=method.delivery_tag)

    while not stopping:
        connection = None
        try:
            connection, channel = broker.open_channel(pika.URLParameters(args.amqp_url))
            declare(channel, routing)
            channel.basic_qos(prefetch_count=1)
            channel.basic_consume(queue=routing.outbox_queue, on_message_callback=on_job)
            print(f"{args.name} consuming {routing.outbox_queue}", flush=True)
            while not stopping:
                connection.process_data_events(time_limit=0.2)
        except broker.BROKER_ERRORS as exc:
            print(f"{args.name}: {type(exc).__name__}: {exc}", flush=True)
            broker.pause(0.2, lambda: stopping)
        finally:
            broker.close_quietly(connection)
    return 0


def _stop(signum: int, frame: FrameType | None) -> None:
    global stopping
    stopping = True


def _record(args: argparse.Namespace, event: str, job: dict[str, Any], outcome: str | None = None) -> None:
    line = {"event": event, "job_id": job["job_id"], "lease_id": job["lease_id"], "agent": args.name, "t": time.time()}
    if outcome:
        line["outcome"] = outcome
    with args.record.open("a") as handle:
        handle.write(json.dumps(line) + "\n")


if __name__ == "__main__":
    raise SystemExit(main())
