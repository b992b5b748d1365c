"""Talking to RabbitMQ with pika's BlockingConnection: parameters, a confirmed channel, publishing.

A BlockingConnection is not thread-safe, so each program uses its connection from one thread
only and keeps it alive by calling `process_data_events` often (heartbeats are answered there).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import pika
import pika.exceptions

from pqueue import backoff
from relay.messages import CONTENT_TYPE
from relay.topology import EXCHANGE

log = logging.getLogger("relay.broker")

# Everything that means "the broker or the connection to it failed": reconnect after a pause.
BROKER_ERRORS: tuple[type[BaseException], ...] = (pika.exceptions.AMQPError, OSError)

# Publish failures after which the message is certainly not on the broker: refused (nack), not
# routed to any queue, or never sent because the channel or connection was already closed. Any
# other failure (the connection dropped while waiting for the confirm) leaves it unknown.
NOT_STORED: tuple[type[BaseException], ...] = (
    pika.exceptions.NackError,
    pika.exceptions.UnroutableError,
    pika.exceptions.ChannelWrongStateError,
    pika.exceptions.ConnectionWrongStateError,
    pika.exceptions.ShortStringTooLong,
    pika.exceptions.BodyTooLongError,
)


class BrokerUrlError(ValueError):
    """PQ_AMQP_URL cannot be used."""


def parameters(url: str) -> pika.URLParameters:
    """Connection parameters from an amqp:// URL (PQ_AMQP_URL); a bad URL is one clear error."""
    if urlsplit(url).scheme not in ("amqp", "amqps"):
        raise BrokerUrlError(f"broker URL {describe(url)!r} must start with amqp:// or amqps://")
    try:
        params = pika.URLParameters(url)
    except ValueError as exc:
        raise BrokerUrlError(f"broker URL {describe(url)!r} is not a usable AMQP URL ({exc})") from None
    # Give up on an unreachable broker quickly and retry from our own loop, which logs why.
    params.connection_attempts = 1
    params.socket_timeout = 5
    params.blocked_connection_timeout = 60
    return params


def describe(url: str) -> str:
    """The URL without its password, for logs."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    port = f":{parts.port}" if _port(parts) else ""
    user = f"{parts.username}@" if parts.username else ""
    return f"{parts.scheme}://{user}{host}{port}{parts.path or '/'}"


def _port(parts: Any) -> int | None:
    try:
        port: int | None = parts.port
    except ValueError:
        return None
    return port


def open_channel(params: pika.URLParameters) -> tuple[Any, Any]:
    """Connect and open one channel with publisher confirms: every publish returns only once
    the broker has taken the message (persisted, for a persistent message on a durable queue)."""
    connection = pika.BlockingConnection(params)
    try:
        channel = connection.channel()
        channel.confirm_delivery()
    except BaseException:
        close_quietly(connection)
        raise
    return connection, channel


def close_quietly(connection: Any) -> None:
    """Close a connection that may already be broken; unacked deliveries go back to their queue."""
    if connection is None:
        return
    try:
        if connection.is_open:
            connection.close()
    except BROKER_ERRORS as exc:
        log.debug("closing the broker connection: %s", exc)


def publish(
    channel: Any,
    routing_key: str,
    body: bytes,
    *,
    message_id: str | None = None,
    message_type: str | None = None,
    expiration_seconds: float | None = None,
    headers: dict[str, Any] | None = None,
    app_id: str = "pqueue",
) -> None:
    """Publish persistent and mandatory, and wait for the broker's confirm.

    Raises UnroutableError when no queue took the message and NackError when the broker refused it;
    either way the message was not stored.
    """
    properties = pika.BasicProperties(
        content_type=CONTENT_TYPE,
        delivery_mode=pika.DeliveryMode.Persistent,
        message_id=message_id,
        type=message_type,
        app_id=app_id,
        timestamp=int(time.time()),
        headers=headers,
        expiration=None if expiration_seconds is None else str(max(1, int(expiration_seconds * 1000))),
    )
    channel.basic_publish(exchange=EXCHANGE, routing_key=routing_key, body=body, properties=properties, mandatory=True)


class Backoff:
    """Pauses between reconnects by pqueue's one backoff rule: 0.5 s doubling up to a cap, from
    the first again after a success."""

    def __init__(self, first: float = 0.5, cap: float = 30.0) -> None:
        self.first = first
        self.cap = cap
        self.failures = 0

    def next(self) -> float:
        self.failures += 1
        return backoff.exponential(self.first, self.failures, self.cap)

    def reset(self) -> None:
        self.failures = 0


def pause(seconds: float, should_stop: Callable[[], bool], step: float = 0.1) -> None:
    """Sleep up to seconds, returning early once should_stop() is true."""
    deadline = time.monotonic() + seconds
    while not should_stop():
        left = deadline - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(step, left))
