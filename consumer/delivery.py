"""Callback delivery: POST every final outcome to its job's callback_url, apart from the algorithm.

The outbox (`pq_deliveries`) is written by the library in the same transaction as the outcome.
`DeliveryLoop` runs as a daemon thread inside the consumer process, next to (never inside) the
algorithm's child process: a slow or dead partner costs a delivery thread, never the licence seat.

Each attempt is one POST. Its result is written back to the outbox row at once, with the time of
the next attempt when it should be retried, so a consumer killed between attempts resumes where
it stopped. Several deliveries are in flight at once (bounded); a row is locked for longer than
an attempt can take, so two consumers never send the same delivery at the same time.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import socket
import ssl
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from consumer.logs import event
from pqueue import (
    Delivery,
    DeliveryLockLost,
    PersistentQInterface,
    PQError,
    Settings,
    SettingsError,
    backoff,
    callbacks,
)

if TYPE_CHECKING:
    import httpx

log = logging.getLogger("consumer.delivery")

DEFAULT_CONCURRENCY = 4
POLL_SECONDS = 0.5
RETRYABLE_CLIENT_ERRORS = frozenset({408, 429})
USER_AGENT = "pqueue-callbacks/1"
# While the database is away, a failed claim of deliveries is logged at most this often.
CLAIM_FAILURE_LOG_SECONDS = 10.0


class TargetRefused(Exception):
    """The callback_url may not be sent to (not http(s), not allowed, or link-local)."""


@dataclass(frozen=True)
class Attempt:
    """What one POST came to, and whether trying again could change that."""

    delivered: bool
    retryable: bool
    status_code: int | None = None
    error: str | None = None
    retry_after: float | None = None


# -- where a callback may go -------------------------------------------------------------------


def check_target(url: str, allowed_hosts: frozenset[str]) -> None:
    """Refuse, before connecting, a URL that is not http(s), whose host PQ_CALLBACK_ALLOW does not
    name, or that resolves to a link-local address (cloud metadata services live there)."""
    import httpx  # imported at the first delivery: a consumer that sends none never loads it

    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise TargetRefused(f"callback_url {url!r} is not a valid URL ({exc})") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise TargetRefused(f"callback_url {url!r} is not an http(s) URL")
    host = parsed.host.lower()
    if allowed_hosts and host not in allowed_hosts:
        raise TargetRefused(f"host {host} is not in PQ_CALLBACK_ALLOW ({', '.join(sorted(allowed_hosts))})")
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    for address in resolve(host, port):
        if is_link_local(address):
            raise TargetRefused(f"host {host} resolves to link-local address {address}; refused")


def resolve(host: str, port: int) -> list[str]:
    """Every address the host resolves to (socket.gaierror when it does not resolve)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return sorted({str(info[4][0]) for info in infos})


def is_link_local(address: str) -> bool:
    """169.254.0.0/16 and fe80::/10, also when written as an IPv4-mapped IPv6 address."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_link_local


# -- one attempt -------------------------------------------------------------------------------


def tls_context(settings: Settings) -> ssl.SSLContext:
    """The TLS context callbacks are sent with (PQ_CALLBACK_CA_BUNDLE, else the system's); a
    SettingsError at once for a bundle that cannot be used."""
    bundle = settings.callback_ca_bundle
    try:
        return ssl.create_default_context(cafile=str(bundle) if bundle else None)
    except (OSError, ssl.SSLError) as exc:
        raise SettingsError(f"PQ_CALLBACK_CA_BUNDLE={str(bundle)!r} cannot be used: {exc}") from None


def make_client(settings: Settings, concurrency: int, context: ssl.SSLContext) -> httpx.Client:
    """An HTTP client that verifies TLS, follows no redirect, and ignores proxy/netrc variables
    (settings come from PQ_* only)."""
    import httpx  # at the first delivery (httpx is about a tenth of a consumer's imports)

    return httpx.Client(
        timeout=httpx.Timeout(settings.callback_timeout),
        follow_redirects=False,
        verify=context,
        trust_env=False,
        limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
        headers={"User-Agent": USER_AGENT},
    )


def post(client: httpx.Client, delivery: Delivery, secrets: list[str], allowed_hosts: frozenset[str]) -> Attempt:
    """Send the delivery once, signed with each secret (none: unsigned); never raises for
    anything the network or the partner does."""
    try:
        check_target(delivery.url, allowed_hosts)
    except TargetRefused as exc:
        return Attempt(delivered=False, retryable=False, error=str(exc))
    except (OSError, UnicodeError) as exc:
        return Attempt(delivered=False, retryable=True, error=f"cannot resolve the callback host: {exc}")
    import httpx

    body = delivery.body.encode()
    headers = callbacks.headers(secrets, body, delivery.idempotency_key)
    try:
        # stream(): the answer's status is all we need; its body is never read.
        with client.stream("POST", delivery.url, content=body, headers=headers) as response:
            return judge(response.status_code, response.headers)
    except httpx.TimeoutException as exc:
        return Attempt(delivered=False, retryable=True, error=f"{type(exc).__name__}: no answer in time ({exc})")
    except httpx.TransportError as exc:
        return Attempt(delivered=False, retryable=True, error=f"{type(exc).__name__}: {exc}")


def judge(status_code: int, headers: httpx.Headers) -> Attempt:
    """A 2xx is delivered; a redirect or a 4xx (but 408/429) will not get better by retrying."""
    if 200 <= status_code < 300:
        return Attempt(delivered=True, retryable=False, status_code=status_code)
    if 300 <= status_code < 400:
        where = headers.get("location", "nowhere")
        error = f"HTTP {status_code} redirect to {where} not followed; fix the callback_url"
        return Attempt(delivered=False, retryable=False, status_code=status_code, error=error)
    if 400 <= status_code < 500 and status_code not in RETRYABLE_CLIENT_ERRORS:
        error = f"HTTP {status_code} from the partner; a client error is not retried"
        return Attempt(delivered=False, retryable=False, status_code=status_code, error=error)
    error = f"HTTP {status_code} from the partner"
    return Attempt(False, True, status_code, error, retry_after_seconds(headers.get("retry-after")))


def retry_after_seconds(value: str | None) -> float | None:
    """A Retry-After given in seconds (the HTTP-date form is ignored)."""
    if value and value.strip().isdigit():
        return float(value.strip())
    return None


def lock_seconds_for(timeout: float) -> float:
    """How long a claimed delivery stays locked: longer than one attempt can take (name lookup,
    then connect, write and read, each bounded by PQ_CALLBACK_TIMEOUT), so no other consumer
    claims it while it is in flight."""
    return 3 * timeout + 10


# -- the loop ----------------------------------------------------------------------------------


class DeliveryLoop:
    """Delivers due callbacks in the background of a consumer; `deliver_due` is one step."""

    def __init__(
        self,
        store: PersistentQInterface,
        settings: Settings,
        worker_id: str,
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
        poll_seconds: float = POLL_SECONDS,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.store = store
        self.settings = settings
        self.worker_id = worker_id
        self.concurrency = concurrency
        self.poll_seconds = poll_seconds
        self.lock_seconds = lock_seconds_for(settings.callback_timeout)
        self._tls = tls_context(settings)  # a bad PQ_CALLBACK_CA_BUNDLE stops the consumer at its start
        self._client: httpx.Client | None = None  # made at the first delivery
        self._client_made = threading.Lock()
        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._claim_failures = 0  # in a row, while the database does not answer
        self._claim_failure_logged = -math.inf
        self._in_flight = 0
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None
        if not settings.callback_secret:
            reason = "PQ_CALLBACK_SECRET is not set: only partners with a secret of their own get signed callbacks"
            event(log, "callbacks_unsigned", level=logging.WARNING, reason=reason)

    # -- one step (tests, and the body of the background thread) --

    def deliver_due(self, limit: int = 10) -> int:
        """Claim up to `limit` due deliveries, send them (up to `concurrency` at once) and record
        each outcome; returns how many were attempted."""
        claimed = self.store.claim_deliveries(self.worker_id, limit=limit, lock_seconds=self.lock_seconds)
        if len(claimed) > 1:
            with ThreadPoolExecutor(max_workers=min(self.concurrency, len(claimed))) as pool:
                list(pool.map(self.attempt, claimed))
        else:
            for delivery in claimed:
                self.attempt(delivery)
        return len(claimed)

    def attempt(self, delivery: Delivery) -> Delivery | None:
        """Send one claimed delivery and record what happened. None if it could not be recorded:
        its lock then runs out and it is sent again, at least once; or another consumer took it
        over after the lock ran out, and that consumer's outcome is the one kept."""
        try:
            secrets = self.signing_secrets(delivery)
        except PQError as exc:  # never sent unsigned or under a wrong secret: its lock runs out, then again
            event(log, "delivery_postponed", delivery.job_id, level=logging.WARNING, secrets_unread=exc)
            return None
        started = time.monotonic()
        outcome = post(self._http(), delivery, secrets, self.settings.callback_allowed_hosts)
        if time.monotonic() - started > self.lock_seconds:
            event(log, "delivery_outlasted_lock", delivery.job_id, level=logging.WARNING, delivery=delivery.id)
        try:
            return self._record(delivery, outcome)
        except DeliveryLockLost as exc:
            event(log, "delivery_lock_lost", delivery.job_id, level=logging.WARNING, delivery=delivery.id, error=exc)
            return None
        except PQError as exc:
            event(log, "delivery_not_recorded", delivery.job_id, level=logging.ERROR, delivery=delivery.id, error=exc)
            return None

    def signing_secrets(self, delivery: Delivery) -> list[str]:
        """The secrets of the job's partner, newest first (two during a rotation's grace), read
        at each attempt so a rotation applies at once; else PQ_CALLBACK_SECRET; else none."""
        partner = self.store.get_job(delivery.job_id).partner
        secrets = self.store.callback_secrets(partner)
        fallback = self.settings.callback_secret
        return secrets or ([fallback] if fallback else [])

    def _record(self, delivery: Delivery, outcome: Attempt) -> Delivery:
        attempts = delivery.attempts + 1
        if outcome.delivered:
            self._log("delivered", delivery, logging.INFO, status=outcome.status_code)
            return self.store.record_delivery(
                delivery.id, delivered=True, status_code=outcome.status_code, held_by=self.worker_id
            )
        retry_in = self._retry_in(outcome, attempts)
        if retry_in is None:
            self._log("undeliverable", delivery, logging.WARNING, error=outcome.error)
        else:
            self._log("delivery_failed", delivery, logging.WARNING, error=outcome.error, retry_in=f"{retry_in:.1f}s")
        return self.store.record_delivery(
            delivery.id,
            delivered=False,
            status_code=outcome.status_code,
            error=outcome.error,
            retry_in_seconds=retry_in,
            held_by=self.worker_id,
        )

    def _log(self, name: str, delivery: Delivery, level: int, **fields: object) -> None:
        attempt = f"{delivery.attempts + 1}/{self.settings.callback_max_attempts}"
        event(log, name, delivery.job_id, level=level, delivery=delivery.id, attempt=attempt, **fields)

    def _retry_in(self, outcome: Attempt, attempts: int) -> float | None:
        """Seconds until the next attempt, or None when this delivery is undeliverable."""
        max_attempts = self.settings.callback_max_attempts
        if not outcome.retryable:
            return None
        if attempts >= max_attempts:
            return None
        delay = backoff.jittered(self.settings.callback_backoff_seconds, attempts)
        if outcome.retry_after is not None:
            delay = max(delay, min(outcome.retry_after, backoff.MAX_SECONDS))
        return delay

    # -- the background thread --

    def start(self) -> None:
        """Deliver in a daemon thread until stop(); looks for due deliveries every poll_seconds."""
        if self._thread is not None:
            raise RuntimeError("the delivery loop is already running")
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name=f"delivery-{self.worker_id}", daemon=True)
        self._thread.start()
        event(
            log,
            "delivery_started",
            concurrency=self.concurrency,
            timeout=self.settings.callback_timeout,
            attempts=self.settings.callback_max_attempts,
            lock=self.lock_seconds,
        )

    def _http(self) -> httpx.Client:
        """The client every delivery thread shares, made by the first that needs it."""
        with self._client_made:
            if self._client is None:
                self._client = make_client(self.settings, self.concurrency, self._tls)
            return self._client

    def wake(self) -> None:
        """Look for due deliveries now (the consumer calls this after recording an outcome)."""
        self._wake.set()

    def stop(self, timeout: float) -> bool:
        """Stop claiming, and wait up to timeout for deliveries in flight; True if none is left.
        One still in flight keeps its lock until it runs out, then any consumer sends it again."""
        deadline = time.monotonic() + timeout
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(max(0.0, deadline - time.monotonic()))
            self._thread = None
        with self._changed:
            drained = self._changed.wait_for(lambda: self._in_flight == 0, max(0.0, deadline - time.monotonic()))
        if drained and self._client is not None:
            self._client.close()
        else:
            event(log, "delivery_stopped", level=logging.WARNING, in_flight=self._in_flight, note="sent again later")
        return drained

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.clear()
            try:
                self._dispatch()
            except PQError as exc:
                self._claim_failed(exc)
            except Exception:
                log.exception("callback delivery loop failed; it goes on")
            else:
                self._claims_work()
            self._wake.wait(self.poll_seconds)

    def _claim_failed(self, exc: PQError) -> None:
        """One line when the database stops answering, then one every CLAIM_FAILURE_LOG_SECONDS."""
        self._claim_failures += 1
        now = time.monotonic()
        if now - self._claim_failure_logged >= CLAIM_FAILURE_LOG_SECONDS:
            self._claim_failure_logged = now
            event(log, "delivery_claim_failed", level=logging.WARNING, error=exc, failures=self._claim_failures)

    def _claims_work(self) -> None:
        if self._claim_failures:
            event(log, "delivery_claims_again", failures=self._claim_failures)
            self._claim_failures, self._claim_failure_logged = 0, -math.inf

    def _dispatch(self) -> None:
        with self._changed:
            free = self.concurrency - self._in_flight
        if free <= 0:
            return
        claimed = self.store.claim_deliveries(self.worker_id, limit=free, lock_seconds=self.lock_seconds)
        self._launch(claimed)

    def _launch(self, claimed: Iterable[Delivery]) -> None:
        for delivery in claimed:
            with self._changed:
                self._in_flight += 1
            name = f"delivery-{delivery.id}"
            threading.Thread(target=self._attempt_in_thread, args=(delivery,), name=name, daemon=True).start()

    def _attempt_in_thread(self, delivery: Delivery) -> None:
        try:
            self.attempt(delivery)
        except Exception:
            log.exception("delivery %d of job %d failed unexpectedly; its lock runs out", delivery.id, delivery.job_id)
        finally:
            with self._changed:
                self._in_flight -= 1
                self._changed.notify_all()
            self._wake.set()  # a slot is free: take the next due delivery now

    @property
    def in_flight(self) -> int:
        """Deliveries being sent by the background thread right now."""
        with self._changed:
            return self._in_flight
