"""The relay: keeps up to a window of a queue's jobs outstanding on RabbitMQ and records their status.

One thread does everything. pika's BlockingConnection is not thread-safe, so the loop alternates
between the broker (`process_data_events` with a short time limit, which also dispatches the
inbox consumer's callbacks and answers heartbeats) and the database (a cheap read that says
whether a claim could succeed, then claims). Nothing blocks for longer than a fraction of a second.

The window is the queue's seat count in the database, exactly like the consumer's licence: a
sent job stays under_process (holding its seat) until its agent reports success or error, or its
lease runs out and rescue takes it back. So a job is never sent again while one copy is
outstanding, and several relays on one queue still share one window.

Agents acknowledge a job message before they start the job (relay/agent.py says how and why), so
RabbitMQ's redeliveries (consumer_timeout, a closed channel, a lost connection) never start a
running job a second time. The broker is not what holds a sent job; its lease here is:
`processing` renews it, `released` gives it back without spending the attempt, and rescue takes
it back once its agent has been silent for a lease.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pqueue import (
    AgentStatus,
    DatabaseBusy,
    DatabaseError,
    InvalidInput,
    Job,
    JobNotFound,
    LeaseLost,
    PersistentQInterface,
    PQError,
    Settings,
    Status,
    StopRequested,
)
from relay import broker
from relay.messages import MalformedStatus, StatusMessage, job_message, parse_status
from relay.topology import Routing, declare

log = logging.getLogger("relay")

POLL_SECONDS = 0.05  # longest the loop waits on the broker before looking at the database again
REPORT_SECONDS = 30.0  # how often the relay logs what it did
PREFETCH = 200  # status messages the broker may push before the relay acks


class Refused(Exception):
    """A status message the relay will not apply; it goes to the dead queue with this reason."""


@dataclass
class Counters:
    """What the relay did since it started (logged every REPORT_SECONDS)."""

    received: int = 0
    sent: int = 0
    processed: int = 0
    crashed: int = 0
    processing: int = 0
    released: int = 0
    stale: int = 0
    dead: int = 0
    publish_failures: int = 0


@dataclass
class Sent:
    """A claim this relay sent: its lease, when the relay last set that lease (monotonic), and
    whether `processing` is already stored for it."""

    lease_id: int
    at: float
    processing: bool = False


class Relay:
    """Feeds one pqueue queue to agents through RabbitMQ and tracks the status they send back."""

    def __init__(
        self,
        store: PersistentQInterface,
        settings: Settings,
        *,
        worker_id: str,
        should_stop: Callable[[], bool],
    ) -> None:
        self.store = store
        self.settings = settings
        self.worker_id = worker_id
        self.should_stop = should_stop
        self.queue = settings.relay_queue
        self.routing = Routing(self.queue)
        self._lease_for(settings.relay_lease_seconds)
        self.params = broker.parameters(settings.amqp_url)
        self.where = broker.describe(settings.amqp_url)
        self.counters = Counters()
        self.backoff = broker.Backoff()
        self._next_housekeeping = 0.0
        # The claims this relay sent, by job id. A status for one of them needs no check of the
        # job's queue, and a repeated `processing` soon after the last write needs no lease
        # renewal. Entries older than a lease are dropped.
        self._sent: dict[int, Sent] = {}
        self._next_report = time.monotonic() + REPORT_SECONDS
        self._connected = False
        self._seat_freed = True
        self._next_ready_check = 0.0

    def _lease_for(self, seconds: float) -> None:
        """Lease sent jobs for `seconds`, and rescue often enough that an expired lease comes back
        soon after it ends."""
        self.lease_seconds = seconds
        self.housekeeping_seconds = min(5.0, max(0.2, seconds / 4))

    # -- start and stop -----------------------------------------------------------------------

    def prepare(self, *, wait_for_go: bool, host: str, pid: int) -> None:
        """Set the window as the queue's seats; with wait_for_go, hold a never-fed queue paused."""
        if wait_for_go and self.store.queue_settings(self.queue) is None:
            # Paused before the seats are written: a crash in between still leaves it paused.
            self.store.pause(self.queue, actor="relay")
            log.info("queue %r is paused until a go (`pq relay go` or POST /relay/go)", self.queue)
        self.store.set_seats(self.queue, self.settings.relay_window)
        info = self.store.adopt_queue(self.queue, lease_seconds=self.settings.relay_lease_seconds)
        self._lease_for(info.lease_seconds)  # the queue's stored lease: `pq queue set --lease` holds here too
        self.store.register_worker(self.worker_id, kind="relay", queue=self.queue, host=host, pid=pid)
        state = "paused, waiting for a go" if info.paused else "feeding"
        log.info(
            "relay %s: queue %r, window %d, lease %.0fs, broker %s, exchange %s, outbox %s, inbox %s (%s)",
            self.worker_id,
            self.queue,
            info.seats,
            self.lease_seconds,
            self.where,
            "pq.relay",
            self.routing.outbox_queue,
            self.routing.inbox_queue,
            state,
        )

    def finish(self) -> None:
        """Leave the registry; outstanding jobs stay with their agents (their leases still run)."""
        self._report()
        try:
            self.store.unregister_worker(self.worker_id)
        except PQError as exc:
            log.warning("could not unregister %s: %s", self.worker_id, exc)

    # -- the outer loop: (re)connect with backoff ---------------------------------------------

    def run(self) -> None:
        """Serve until asked to stop, reconnecting to RabbitMQ (and waiting out the database)."""
        while not self.should_stop():
            connection = None
            self._connected = False
            try:
                connection, channel = broker.open_channel(self.params)
                self._serve(connection, channel)
            except broker.BROKER_ERRORS as exc:
                what = "connection lost to" if self._connected else "cannot reach"
                self._pause_after(f"{what} RabbitMQ at {self.where} ({_reason(exc)})")
            except DatabaseError as exc:
                self._pause_after(f"database trouble ({exc})")
            finally:
                broker.close_quietly(connection)

    def _pause_after(self, why: str) -> None:
        if self.should_stop():
            return
        delay = self.backoff.next()
        log.warning("%s; retrying in %.1fs", why, delay)
        deadline = time.monotonic() + delay
        while not self.should_stop() and time.monotonic() < deadline:
            # Leases keep running out while the broker is away: keep rescuing them.
            self._housekeeping_quietly()
            broker.pause(min(0.5, max(0.0, deadline - time.monotonic())), self.should_stop)

    # -- one connection -----------------------------------------------------------------------

    def _serve(self, connection: Any, channel: Any) -> None:
        declare(channel, self.routing)
        channel.basic_qos(prefetch_count=PREFETCH)
        channel.basic_consume(queue=self.routing.inbox_queue, on_message_callback=self._on_status, auto_ack=False)
        log.info("connected to RabbitMQ at %s", self.where)
        self._connected = True
        self.backoff.reset()
        self._seat_freed = True
        self._apply_waiting_status(connection)
        while not self.should_stop():
            # Status first (it frees seats), then housekeeping, then top the window up.
            connection.process_data_events(time_limit=POLL_SECONDS)
            self._housekeeping()
            self._top_up(connection, channel)

    def _apply_waiting_status(self, connection: Any, limit_seconds: float = 5.0) -> None:
        """Apply the status that piled up in the inbox (say, while the relay was down) before the
        first rescue, so a restart does not take back jobs whose agents have already answered."""
        deadline = time.monotonic() + limit_seconds
        while not self.should_stop() and time.monotonic() < deadline:
            before = self.counters.received
            connection.process_data_events(time_limit=0.2)
            if self.counters.received == before:
                return

    def _top_up(self, connection: Any, channel: Any) -> None:
        """Fill the window when a seat may be free: at once after this relay freed one, else after
        a cheap read (at most every POLL_SECONDS) says a claim could succeed (new jobs, a go)."""
        now = time.monotonic()
        if not self._seat_freed and now < self._next_ready_check:
            return
        self._next_ready_check = now + POLL_SECONDS
        if self._seat_freed or self.store.wait_for_work(0, queue=self.queue):
            self._fill(connection, channel)
        # _fill stops only when a claim found nothing, after every status it handled meanwhile.
        self._seat_freed = False

    def _fill(self, connection: Any, channel: Any) -> None:
        """Claim and publish until the window is full or nothing is waiting."""
        while not self.should_stop():
            job = self.store.get_item(self.worker_id, queue=self.queue, lease_seconds=self.lease_seconds)
            if job is None:
                return
            self._send(channel, job)
            connection.process_data_events(time_limit=0)

    def _send(self, channel: Any, job: Job) -> None:
        """Publish one claimed job; if the broker did not confirm it, give the claim back."""
        try:
            broker.publish(
                channel,
                self.routing.outbox_key,
                job_message(job, self.lease_seconds),
                message_id=f"{job.id}-{job.lease_id}",
                message_type="pq.job",
                # A copy nobody took before the lease ended is dropped: rescue sends a new one.
                expiration_seconds=self.lease_seconds,
                app_id="pq-relay",
            )
        except broker.NOT_STORED as exc:
            self.counters.publish_failures += 1
            self._give_back(job, exc)
            raise
        except broker.BROKER_ERRORS as exc:
            # The broker may have stored it without our hearing the confirm. Releasing now could
            # put a second copy next to the first; instead the claim stands: an agent that got
            # the copy reports as usual, and if none did, the copy expires with the lease and
            # rescue sends the job again.
            self.counters.publish_failures += 1
            log.warning(
                "job %d: no confirm from the broker (%s); it stays outstanding until an agent reports or lease %d ends",
                job.id,
                _reason(exc),
                job.lease_id,
            )
            raise
        self.counters.sent += 1
        self._sent[job.id] = Sent(job.lease_id, time.monotonic())
        self._mark_queued(job)
        log.debug("sent job %d (lease %d, attempt %d)", job.id, job.lease_id, job.attempts)

    def _mark_queued(self, job: Job) -> None:
        """Record `queued` for the job the broker confirmed: on the broker, no agent has it yet.

        The write also starts the lease from the publish. An operator's stop request made in the
        meantime is recorded at once (the seat frees); a lease already gone needs nothing."""
        try:
            self.store.heartbeat(
                job.id, job.lease_id, lease_seconds=self.lease_seconds, agent_status=AgentStatus.QUEUED
            )
        except LeaseLost as exc:
            log.info("job %d: not marked queued: %s", job.id, exc)
        except StopRequested as exc:
            self._sent.pop(job.id, None)
            self._stop(job.id, job.lease_id, exc)

    def _give_back(self, job: Job, exc: BaseException) -> None:
        reason = f"relay could not publish it: {_reason(exc)}"
        try:
            self.store.release(job.id, job.lease_id, reason=reason)
            log.warning("job %d back to unprocessed: %s", job.id, reason)
        except PQError as release_error:
            # Its lease runs out and rescue takes it back; nothing is lost.
            log.warning("job %d: %s; could not release it (%s)", job.id, reason, release_error)

    # -- status messages ----------------------------------------------------------------------

    def _on_status(self, channel: Any, method: Any, properties: Any, body: bytes) -> None:
        """Apply one status message; ack only after the database committed it."""
        self.counters.received += 1
        try:
            message = parse_status(body)
            self._apply(message)
        except (MalformedStatus, Refused) as exc:
            self._dead_letter(channel, method, properties, body, str(exc))
            return
        except DatabaseBusy:
            # Not acked: the message comes back after the reconnect the caller does.
            raise
        except DatabaseError as exc:
            self._dead_letter(channel, method, properties, body, f"the database refused it: {exc}")
            return
        channel.basic_ack(delivery_tag=method.delivery_tag)

    def _apply(self, message: StatusMessage) -> None:
        known = self._sent.get(message.job_id)
        if known is None or known.lease_id != message.lease_id or message.status in ("processing", "released"):
            # Not a claim this relay sent (or a `processing` or `released`, which must notice stop
            # requests): check the job exists and is this relay's queue's before touching it.
            try:
                job = self.store.get_job(message.job_id)
            except JobNotFound:
                raise Refused(f"job {message.job_id} not found") from None
            if job.queue != self.queue:
                raise Refused(f"job {message.job_id} belongs to queue {job.queue!r}, not {self.queue!r}")
            if message.status == "processing" and self._renewal_needless(job, message):
                self.counters.processing += 1
                return
            if message.status == "released" and job.stop_request is not None and job.lease_id == message.lease_id:
                # Given back while an operator asked to stop it: record the stop, not a retry.
                self._sent.pop(message.job_id, None)
                self._stop(
                    message.job_id, message.lease_id, StopRequested(job.id, job.stop_request.value, job.stop_reason)
                )
                return
        if message.status != "processing":
            self._sent.pop(message.job_id, None)
        try:
            self._record(message)
        except LeaseLost as exc:
            # A duplicate, a late message, or one from an agent whose lease was rescued.
            self.counters.stale += 1
            log.info("ignored %s for job %d: %s", message.status, message.job_id, exc)
        except StopRequested as exc:
            self._stop(message.job_id, message.lease_id, exc)
        except InvalidInput as exc:
            raise Refused(str(exc)) from None

    def _renewal_needless(self, job: Job, message: StatusMessage) -> bool:
        """True when `processing` is already stored for this claim, this relay set the lease less
        than a quarter lease ago and nothing is asked of the job: renewing it would buy nothing
        (agents repeat `processing` every third of the lease)."""
        known = self._sent.get(job.id)
        return (
            known is not None
            and known.processing
            and known.lease_id == message.lease_id == job.lease_id
            and job.status == Status.UNDER_PROCESS
            and job.stop_request is None
            and time.monotonic() - known.at < self.lease_seconds / 4
        )

    def _record(self, message: StatusMessage) -> None:
        job_id, lease_id = message.job_id, message.lease_id
        if message.status == "processing":
            self.store.heartbeat(
                job_id, lease_id, lease_seconds=self.lease_seconds, agent_status=AgentStatus.PROCESSING
            )
            self._sent[job_id] = Sent(lease_id, time.monotonic(), processing=True)
            self.counters.processing += 1
        elif message.status == "released":
            # The agent stopped before finishing: unprocessed again, attempt not spent, sent anew.
            reason = f"agent {message.agent or '?'} gave it back unfinished"
            self.store.release(job_id, lease_id, reason=reason)
            self.counters.released += 1
            self._seat_freed = True
            log.info("job %d: %s", job_id, reason)
        elif message.status == "success":
            self.store.update_status(job_id, "processed", lease_id=lease_id, result=message.result)
            self.counters.processed += 1
            self._seat_freed = True
        else:
            job = self.store.update_status(job_id, "crashed", lease_id=lease_id, error=message.error)
            self.counters.crashed += 1
            self._seat_freed = True
            log.info("job %d: agent %s reported an error; now %s", job_id, message.agent or "?", job.status)

    def _stop(self, job_id: int, lease_id: int, request: StopRequested) -> None:
        """An operator cancelled or failed a job an agent is working on: record it, free the seat."""
        try:
            self.store.update_status(job_id, request.target, lease_id=lease_id, error=request.reason)
            log.info("job %d: %s on an operator's request", job_id, request.target)
            self._seat_freed = True
        except LeaseLost as exc:
            log.info("job %d: stop request already settled (%s)", job_id, exc)

    def _dead_letter(self, channel: Any, method: Any, properties: Any, body: bytes, reason: str) -> None:
        """Keep a refused message on the dead queue with the reason, then ack it."""
        headers = dict(getattr(properties, "headers", None) or {})
        headers.update({"x-pq-reason": reason[:1000], "x-pq-from": self.routing.inbox_queue})
        broker.publish(
            channel,
            self.routing.dead_key,
            body,
            message_id=getattr(properties, "message_id", None),
            message_type="pq.dead-status",
            headers=headers,
            app_id="pq-relay",
        )
        channel.basic_ack(delivery_tag=method.delivery_tag)
        self.counters.dead += 1
        log.warning("status message dead-lettered to %s: %s", self.routing.dead_queue, reason)

    # -- periodic work ------------------------------------------------------------------------

    def _housekeeping(self) -> None:
        now = time.monotonic()
        if now >= self._next_housekeeping:
            self._next_housekeeping = now + self.housekeeping_seconds
            for job_id, status in self.store.rescue_expired(actor="relay"):
                log.warning("job %d: lease expired with no word from an agent; now %s", job_id, status)
                self._seat_freed = True
            self.store.touch_worker(self.worker_id)
            stale = [job_id for job_id, sent in self._sent.items() if now - sent.at > self.lease_seconds]
            for job_id in stale:
                del self._sent[job_id]
        if now >= self._next_report:
            self._next_report = now + REPORT_SECONDS
            self._report()

    def _housekeeping_quietly(self) -> None:
        try:
            self._housekeeping()
        except PQError as exc:
            log.debug("housekeeping failed: %s", exc)

    def _report(self) -> None:
        c = self.counters
        log.info(
            "sent %d, status messages %d: processed %d, crashed %d, processing %d, released %d, stale %d, "
            "dead-lettered %d; publish failures %d",
            c.sent,
            c.received,
            c.processed,
            c.crashed,
            c.processing,
            c.released,
            c.stale,
            c.dead,
            c.publish_failures,
        )


def _reason(exc: BaseException) -> str:
    text = str(exc).strip() or repr(exc)
    return f"{type(exc).__name__}: {text}"
