"""A TCP forwarder the tests can break in the two ways a real network breaks.

- cut(): every forwarded connection is closed and the port refuses new ones (a host or a
  server gone, a link down with resets): the programs see an error at once.
- black_hole(): every socket stays open, but nothing moves any more and new connections are
  accepted and then never answered (a NAT or a firewall that lost its state and drops
  packets): the programs see only silence, and nothing in the network ever tells them.

heal() lets new connections through again. Connections black-holed before stay dead for good,
as a NAT that forgot them would leave them; only closing them frees them.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from dataclasses import dataclass

from sqlalchemy import make_url

from tests.support import free_port


@dataclass
class Link:
    """One connection through the proxy: the client's side and, unless parked, the target's."""

    client: socket.socket
    target: socket.socket | None = None
    frozen: bool = False  # black-holed: its sockets stay open, nothing is read or forwarded

    def sockets(self) -> list[socket.socket]:
        return [self.client] + ([self.target] if self.target is not None else [])


class NetworkProxy:
    """Forwards bind_host:port to target_host:target_port until cut or black-holed."""

    def __init__(self, target_host: str, target_port: int, *, bind_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.bind_host = bind_host
        self.port = free_port() if bind_host == "127.0.0.1" else 0
        self.mode = "closed"  # forwarding, black_hole, cut, closed
        self._lock = threading.Lock()
        self._links: list[Link] = []
        self._listener: socket.socket | None = None

    @classmethod
    def to_url(cls, url: str, *, bind_host: str = "127.0.0.1") -> NetworkProxy:
        """A started proxy to the server of a database URL."""
        parsed = make_url(url)
        proxy = cls(parsed.host or "127.0.0.1", parsed.port or 5432, bind_host=bind_host)
        proxy.start()
        return proxy

    def url_through(self, url: str) -> str:
        """The database URL that goes through this proxy."""
        through = make_url(url).set(host=self.bind_host, port=self.port)
        return through.render_as_string(hide_password=False)

    def start(self) -> None:
        """Listen and forward (the same port every time)."""
        with self._lock:
            if self._listener is None:
                listener = socket.socket()
                listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                listener.bind((self.bind_host, self.port))
                listener.listen(64)
                self.port = listener.getsockname()[1]
                self._listener = listener
                threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
            self.mode = "forwarding"

    def heal(self) -> None:
        """New connections go through again (black-holed ones stay dead)."""
        self.start()

    def black_hole(self) -> None:
        """Silence: every socket stays open, nothing is forwarded, new connections hang."""
        with self._lock:
            self.mode = "black_hole"
            for link in self._links:
                link.frozen = True

    def cut(self) -> None:
        """The network is gone: close every connection and refuse new ones."""
        with self._lock:
            self.mode = "cut"
            self._close_listener()
            links, self._links = self._links, []
        _close(links)

    def close(self) -> None:
        """Stop for good, closing everything (black-holed connections too)."""
        self.cut()
        self.mode = "closed"

    def open_connections(self) -> int:
        """Connections the proxy holds now (forwarded or black-holed)."""
        with self._lock:
            return len(self._links)

    def _close_listener(self) -> None:
        if self._listener is not None:
            # shutdown wakes the thread blocked in accept(); close alone would leave it accepting
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
            self._listener = None

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut or closed
            link = Link(client)
            with self._lock:
                if self._listener is not listener:  # cut meanwhile
                    client.close()
                    return
                self._links.append(link)
                link.frozen = self.mode == "black_hole"
            if not link.frozen:
                threading.Thread(target=self._connect, args=(link,), daemon=True).start()

    def _connect(self, link: Link) -> None:
        try:
            target = socket.create_connection(self.target, timeout=5)
        except OSError:
            self._drop(link)
            return
        target.settimeout(None)
        with self._lock:
            if link not in self._links:  # cut meanwhile
                target.close()
                return
            link.target = target
        for source, sink in ((link.client, target), (target, link.client)):
            threading.Thread(target=_pump, args=(link, source, sink), daemon=True).start()

    def _drop(self, link: Link) -> None:
        with self._lock:
            if link in self._links:
                self._links.remove(link)
        _close([link])


def _pump(link: Link, source: socket.socket, sink: socket.socket) -> None:
    """Copy one direction until EOF; once the link is frozen, stop without closing anything."""
    while True:
        try:
            data = source.recv(65536)
        except OSError:
            break
        if link.frozen:
            return  # what arrives now is lost, and nobody is told
        if not data:
            break
        try:
            sink.sendall(data)
        except OSError:
            break
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)  # pass the end on, as the network would


def _close(links: list[Link]) -> None:
    for link in links:
        for sock in link.sockets():
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
