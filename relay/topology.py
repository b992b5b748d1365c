"""The routing on RabbitMQ: one durable direct exchange, and three durable queues per pqueue queue.

Every name derives from the pqueue queue name, so several relays (and tests) share one broker
without meeting. For the pqueue queue `remote`:

    exchange pq.relay (direct, durable)
      routing key remote.job    -> queue pq.remote.outbox   jobs for agents        (relay -> agents)
      routing key remote.status -> queue pq.remote.inbox    status of those jobs   (agents -> relay)
      routing key remote.dead   -> queue pq.remote.dead     status messages the relay refused
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

EXCHANGE = "pq.relay"
# AMQP short strings (queue names, routing keys) are at most 255 bytes.
MAX_NAME_BYTES = 255


@dataclass(frozen=True)
class Routing:
    """Queue names and routing keys for one pqueue queue."""

    queue: str

    @property
    def outbox_queue(self) -> str:
        return f"pq.{self.queue}.outbox"

    @property
    def outbox_key(self) -> str:
        return f"{self.queue}.job"

    @property
    def inbox_queue(self) -> str:
        return f"pq.{self.queue}.inbox"

    @property
    def inbox_key(self) -> str:
        return f"{self.queue}.status"

    @property
    def dead_queue(self) -> str:
        return f"pq.{self.queue}.dead"

    @property
    def dead_key(self) -> str:
        return f"{self.queue}.dead"

    def problem(self) -> str | None:
        """Why this queue name cannot be used on RabbitMQ, or None."""
        longest = max((self.outbox_queue, self.inbox_queue, self.dead_queue), key=lambda n: len(n.encode()))
        if not self.queue:
            return "the relay queue name is empty"
        if len(longest.encode()) > MAX_NAME_BYTES:
            return f"queue name {self.queue!r} is too long for RabbitMQ (the name {longest!r} exceeds 255 bytes)"
        return None


def declare(channel: Any, routing: Routing) -> None:
    """Create the exchange and queues if missing (idempotent; the relay and the agents both call it).

    The inbox dead-letters to the dead queue, so a status message rejected by any consumer is
    kept for an operator rather than dropped.
    """
    channel.exchange_declare(exchange=EXCHANGE, exchange_type="direct", durable=True)
    dead_letters = {"x-dead-letter-exchange": EXCHANGE, "x-dead-letter-routing-key": routing.dead_key}
    for name, key, arguments in (
        (routing.outbox_queue, routing.outbox_key, None),
        (routing.inbox_queue, routing.inbox_key, dead_letters),
        (routing.dead_queue, routing.dead_key, None),
    ):
        channel.queue_declare(queue=name, durable=True, arguments=arguments)
        channel.queue_bind(queue=name, exchange=EXCHANGE, routing_key=key)
