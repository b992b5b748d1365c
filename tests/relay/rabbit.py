"""Test helpers for the relay: a RabbitMQ handle, and a TCP forwarder that can cut connections."""

from __future__ import annotations

import contextlib
import json
import select
import socket
import threading
from typing import Any

import pika
import pika.exceptions

from relay.topology import EXCHANGE, Routing, declare

RABBIT_HOST = "127.0.0.1"
RABBIT_PORT = 5672


def rabbit_url(port: int = RABBIT_PORT) -> str:
    return f"amqp://guest:guest@{RABBIT_HOST}:{port}/%2F"


def rabbit_reachable() -> bool:
    try:
        with socket.create_connection((RABBIT_HOST, RABBIT_PORT), timeout=2):
            return True
    except OSError:
        return False


class Rabbit:
    """A test's own connection to RabbitMQ, to look at and poke the relay's queues."""

    def __init__(self, routing: Routing, url: str | None = None) -> None:
        self.routing = routing
        self.connection = pika.BlockingConnection(pika.URLParameters(url or rabbit_url()))
        self.channel = self.connection.channel()
        self.channel.confirm_delivery()
        declare(self.channel, routing)

    def depth(self, queue: str) -> int:
        """Messages ready in a queue (passive declare: never creates it)."""
        count: int = self.channel.queue_declare(queue=queue, passive=True).method.message_count
        return count

    def consumers(self, queue: str) -> int:
        """Consumers now on a queue (passive declare)."""
        count: int = self.channel.queue_declare(queue=queue, passive=True).method.consumer_count
        return count

    def send_status(self, body: bytes | dict[str, Any]) -> None:
        """Publish a raw status message to the inbox, as an agent would."""
        raw = json.dumps(body).encode() if isinstance(body, dict) else body
        self.channel.basic_publish(
            exchange=EXCHANGE,
            routing_key=self.routing.inbox_key,
            body=raw,
            properties=pika.BasicProperties(delivery_mode=2, content_type="application/json"),
            mandatory=True,
        )

    def take_all(self, queue: str) -> list[tuple[Any, bytes]]:
        """Every message now ready in the queue, acked: (properties, body)."""
        taken: list[tuple[Any, bytes]] = []
        while True:
            method, properties, body = self.channel.basic_get(queue=queue, auto_ack=True)
            if method is None:
                return taken
            taken.append((properties, body))

    def delete_queues(self) -> None:
        for name in (self.routing.outbox_queue, self.routing.inbox_queue, self.routing.dead_queue):
            self.channel.queue_delete(queue=name)

    def close(self) -> None:
        with contextlib.suppress(pika.exceptions.AMQPError):
            self.connection.close()


class Forwarder:
    """Listens on a local port and forwards to RabbitMQ; `cut()` drops every open connection,
    as a broker restart or a network blip would. Nothing listens until `open()`."""

    def __init__(self, port: int, upstream_port: int = RABBIT_PORT) -> None:
        self.port = port
        self.upstream_port = upstream_port
        self._server: socket.socket | None = None
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.accepted = 0

    def open(self) -> None:
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", self.port))
        server.listen(16)
        server.settimeout(0.1)
        self._server = server
        threading.Thread(target=self._accept_loop, daemon=True).start()

    def _accept_loop(self) -> None:
        assert self._server is not None
        while not self._stop.is_set():
            try:
                client, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            upstream = socket.create_connection((RABBIT_HOST, self.upstream_port))
            with self._lock:
                self._pairs.append((client, upstream))
                self.accepted += 1
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()

    def _pump(self, client: socket.socket, upstream: socket.socket) -> None:
        sockets = [client, upstream]
        try:
            while not self._stop.is_set():
                readable, _, _ = select.select(sockets, [], [], 0.1)
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    (upstream if sock is client else client).sendall(data)
        except OSError:
            return
        finally:
            for sock in sockets:
                sock.close()

    def cut(self) -> None:
        """Drop every forwarded connection at once (the listener stays open)."""
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for pair in pairs:
            for sock in pair:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._stop.set()
        self.cut()
        if self._server is not None:
            self._server.close()
