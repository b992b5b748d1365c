"""`pq-relay` / `python -m relay`: run the broker relay until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import sys
from collections.abc import Sequence
from types import FrameType

import pqueue
from pqueue import NewJob, PQError
from relay import broker
from relay.broker import BrokerUrlError
from relay.service import Relay
from relay.topology import Routing

log = logging.getLogger("relay")

MAX_BACKLOG = 100_000  # a demo's backlog; more is a mistake, not a demo


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="pq-relay",
        description="Keep remote agents on RabbitMQ fed from a pqueue queue and record the status they send back.",
    )
    parser.add_argument("--queue", help="pqueue queue to feed (default: PQ_RELAY_QUEUE)")
    parser.add_argument("--window", type=int, help="jobs kept outstanding on the broker (default: PQ_RELAY_WINDOW)")
    parser.add_argument(
        "--wait-for-go",
        action="store_true",
        help="on the queue's first start, hold it paused until `pq relay go` or POST /relay/go resumes it",
    )
    parser.add_argument(
        "--backlog",
        type=int,
        default=0,
        metavar="N",
        help='first put N work units ({"unit": 1} … {"unit": N}) into the queue, as a demo\'s initial '
        "backlog; each has the idempotency key backlog-<n>, so a restart adds none",
    )
    args = parser.parse_args(argv)
    if not 0 <= args.backlog <= MAX_BACKLOG:
        parser.error(f"--backlog: must be between 0 and {MAX_BACKLOG}, got {args.backlog}")
    return args


def put_backlog(store: pqueue.PersistentQ, queue: str, units: int) -> int:
    """The demo's initial backlog: work units 1 to `units` in `queue`; how many were new."""
    jobs = [NewJob({"unit": n}, queue=queue, idempotency_key=f"backlog-{n}") for n in range(1, units + 1)]
    return sum(put.created for put in store.put_items(jobs, actor="relay"))


def configuration_problem(settings: pqueue.Settings) -> str | None:
    """Why the relay cannot start with these settings (checked before touching anything), or None."""
    problem = Routing(settings.relay_queue).problem()
    if problem:
        return f"PQ_RELAY_QUEUE: {problem}"
    try:
        broker.parameters(settings.amqp_url)
    except BrokerUrlError as exc:
        return f"PQ_AMQP_URL: {exc}"
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Start the relay; exit 0 after a clean stop, 2 on bad configuration."""
    args = parse_args(argv)
    overrides: dict[str, object] = {}
    if args.queue is not None:
        overrides["relay_queue"] = args.queue
    if args.window is not None:
        overrides["relay_window"] = args.window
    try:
        settings = pqueue.load_settings(**overrides)
    except PQError as exc:
        sys.stderr.write(f"pq-relay: {exc}\n")
        return 2
    problem = configuration_problem(settings)
    if problem:
        sys.stderr.write(f"pq-relay: {problem}\n")
        return 2
    pqueue.setup_logging(settings)
    # pika logs each connection step, and each drop four times over; the relay logs one line.
    logging.getLogger("pika").setLevel(logging.CRITICAL)

    stopping = False

    def request_stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        log.info("%s received: stopping", signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)

    store = pqueue.open_with_retry(settings, migrate=True, program="relay", should_stop=lambda: stopping)
    if store is None:
        return 0
    host, pid = socket.gethostname(), os.getpid()
    try:
        relay = Relay(store, settings, worker_id=f"relay-{host}-{pid}", should_stop=lambda: stopping)
        relay.prepare(wait_for_go=args.wait_for_go, host=host, pid=pid)
        if args.backlog:
            added = put_backlog(store, settings.relay_queue, args.backlog)
            log.info(
                "backlog: %d work units put into %r (%d were there already)",
                added,
                settings.relay_queue,
                args.backlog - added,
            )
        relay.run()
        relay.finish()
    finally:
        store.close()
    log.info("relay stopped")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
