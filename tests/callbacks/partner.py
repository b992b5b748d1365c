"""A partner's callback receiver for tests: a real HTTP server on 127.0.0.1 that records what it
receives and answers as told (fail N times, answer slowly, redirect, hold requests open)."""

from __future__ import annotations

import ssl
import threading
from collections import Counter, deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Reply:
    """How the partner answers one request."""

    status: int = 200
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    hold: bool = False  # keep the request open until release() (or the server stops)


@dataclass
class Received:
    """One request as the partner saw it."""

    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes
    answered: int | None = None


class Partner:
    """Answers POSTs with the planned replies in order, then with `default`."""

    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self.default = Reply()
        self.planned: deque[Reply] = deque()
        self.received: list[Received] = []
        self.active: Counter[str] = Counter()  # idempotency key -> requests open right now
        self.overlaps: list[str] = []  # keys that were open twice at the same moment
        self.open_now = 0
        self.peak_open = 0
        self.lock = threading.Lock()
        self.released = threading.Event()
        self.stopping = threading.Event()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self.server.daemon_threads = True
        self.server.handle_error = lambda request, client_address: None  # type: ignore[method-assign]
        self.scheme = "http"
        if ssl_context is not None:
            self.server.socket = ssl_context.wrap_socket(self.server.socket, server_side=True)
            self.scheme = "https"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def url(self, path: str = "/hook") -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}{path}"

    def plan(self, *replies: Reply) -> None:
        with self.lock:
            self.planned.extend(replies)

    def requests(self, path: str | None = None) -> list[Received]:
        with self.lock:
            return [r for r in self.received if path is None or r.path == path]

    def release(self) -> None:
        self.released.set()

    def start(self) -> Partner:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self.released.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)

    # -- called by the handler --

    def take(self, received: Received) -> Reply:
        key = received.headers.get("idempotency-key", "")
        with self.lock:
            self.received.append(received)
            self.active[key] += 1
            if self.active[key] > 1:
                self.overlaps.append(key)
            self.open_now += 1
            self.peak_open = max(self.peak_open, self.open_now)
            return self.planned.popleft() if self.planned else self.default

    def answering(self, received: Received, status: int) -> None:
        """Recorded before the reply goes out: a client that has read it sees it recorded."""
        with self.lock:
            received.answered = status

    def done(self, received: Received) -> None:
        with self.lock:
            self.active[received.headers.get("idempotency-key", "")] -= 1
            self.open_now -= 1


def _handler_for(partner: Partner) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:  # noqa: N802 - the name http.server calls
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            headers = {name.lower(): value for name, value in self.headers.items()}
            received = Received(self.path, headers, body)
            reply = partner.take(received)
            try:
                self._answer(received, reply)
            except OSError:
                pass  # the client gave up (read timeout) and closed the connection
            finally:
                partner.done(received)

        def _answer(self, received: Received, reply: Reply) -> None:
            if reply.hold:
                partner.released.wait()
            if reply.delay:
                partner.stopping.wait(reply.delay)
            partner.answering(received, reply.status)
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
            pass

    return Handler
