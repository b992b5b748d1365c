"""`pq-consumer` / `python -m consumer`: run the queue's jobs one at a time until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import socket
import sys
from collections.abc import Sequence

import pqueue
from admin.queue_options import overruled_line
from consumer.delivery import DeliveryLoop
from consumer.helper_link import HelperLink
from consumer.loading import AlgorithmUnavailable, parse_spec
from consumer.logs import event
from consumer.spares import Spares
from consumer.stopping import Shutdown, Waker
from consumer.worker import Consumer
from pqueue import PersistentQInterface, PQError, QueueInfo, Settings, overruled, patiently

log = logging.getLogger("consumer")

DELIVERY_STOP_TIMEOUT = 5.0


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="pq-consumer",
        description="Claim jobs one at a time, run the algorithm (PQ_ALGORITHM) on each in a child process, "
        "and record the result. SIGTERM: finish the running job within PQ_SHUTDOWN_GRACE, then exit.",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--once", action="store_true", help="run at most one job, then exit")
    mode.add_argument("--drain", action="store_true", help="run jobs until nothing is claimable, then exit 0")
    parser.add_argument("--queue", help="queue to claim from (default: PQ_QUEUE)")
    return parser.parse_args(argv)


def make_worker_id() -> str:
    """host:pid:random, unique even when a pid is reused after a restart."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def main(argv: Sequence[str] | None = None) -> int:
    """Start the consumer; 0 after a clean stop, 2 on bad configuration, 1 when the algorithm cannot load."""
    args = parse_args(argv)
    overrides: dict[str, object] = {"queue": args.queue} if args.queue else {}
    try:
        settings = pqueue.load_settings(**overrides)
        parse_spec(settings.algorithm)
    except (PQError, AlgorithmUnavailable) as exc:
        sys.stderr.write(f"pq-consumer: {exc}\n")
        return 2
    pqueue.setup_logging(settings)
    waker = Waker()
    shutdown = Shutdown(waker)
    shutdown.install()
    link = HelperLink(settings)
    spares = Spares(link)
    try:
        link.start()  # imports the algorithm while the database opens
        return _serve(settings, spares, waker, shutdown, args)
    except AlgorithmUnavailable as exc:
        event(log, "algorithm_unavailable", level=logging.ERROR, error=str(exc))
        sys.stderr.write(f"pq-consumer: {exc}\n")
        return 1
    except PQError as exc:  # the database went away at start-up; Supervisor starts us again
        event(log, "failed", level=logging.ERROR, error=str(exc))
        return 1
    finally:
        spares.close()


def _serve(settings: Settings, spares: Spares, waker: Waker, shutdown: Shutdown, args: argparse.Namespace) -> int:
    store = pqueue.open_with_retry(settings, migrate=True, program="consumer", should_stop=lambda: shutdown.requested)
    if store is None:
        return 0
    try:
        spares.link.wait_ready()
        return _work(store, settings, spares, waker, shutdown, args)
    finally:
        store.close()


def _work(
    store: PersistentQInterface,
    settings: Settings,
    spares: Spares,
    waker: Waker,
    shutdown: Shutdown,
    args: argparse.Namespace,
) -> int:
    worker_id = make_worker_id()
    queue = settings.queue

    def register() -> QueueInfo:
        store.register_worker(worker_id, kind="consumer", queue=queue, host=socket.gethostname(), pid=os.getpid())
        return store.adopt_queue(queue)

    # The database may go (or fail over) between opening and these first writes: wait, as opening does.
    stored = patiently(register, what="cannot register", log=log, should_stop=lambda: shutdown.requested)
    if stored is None:
        return 0
    event(
        log,
        "started",
        worker=worker_id,
        queue=queue,
        algorithm=settings.algorithm,
        database=store.describe(),
        seats=stored.seats,
        max_attempts=stored.max_attempts,
        lease=stored.lease_seconds,
        timeout=stored.job_timeout,
        backoff=stored.retry_backoff_seconds,
        timeout_retries=stored.timeout_retries,
        grace=settings.shutdown_grace,
    )
    for said in overruled(settings, stored):
        event(log, "setting_overruled", level=logging.WARNING, detail=overruled_line(said))
    delivery = DeliveryLoop(store, settings, worker_id)
    delivery.start()
    consumer = Consumer(
        store, settings, worker_id, spares, queue=queue, waker=waker, shutdown=shutdown, on_final=delivery.wake
    )
    try:
        consumer.run(drain=args.drain, once=args.once)
    finally:
        delivery.stop(DELIVERY_STOP_TIMEOUT)
        try:
            store.unregister_worker(worker_id)
        except PQError as exc:
            event(log, "unregister_failed", level=logging.WARNING, error=str(exc))
        event(log, "stopped", worker=worker_id, jobs=consumer.jobs_run)
    return 0


if __name__ == "__main__":
    sys.exit(main())
