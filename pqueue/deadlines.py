"""A deadline on every PostgreSQL call, whatever the network between program and server does.

The server's statement_timeout ends a slow statement, and TCP keepalives and tcp_user_timeout
end a connection whose packets vanish. Neither helps when the network drops packets while
something in between keeps the TCP connection alive (a proxy, a pooler, a load balancer), and
a cancelled statement's error cannot come back over a dead network either. So each program
keeps its own deadline: a connection checked out of the pool longer than the deadline (its
ping, its transaction, its reset) has its socket shut down by one watchdog thread, and the call
blocked on it fails at once as a lost connection, which the pool answers by reconnecting.
Connections that sat in the pool while a call went unanswered are replaced unpinged: they went
through the same network, and pinging each would cost a deadline apiece.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import socket
import threading
import time
import weakref
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.exc import DisconnectionError

log = logging.getLogger("pqueue")

_CHECKED_IN = "pq_checked_in"


class CallDeadline:
    """The deadline of one engine's PostgreSQL calls, kept by the process's watchdog."""

    def __init__(self, seconds: float, why: str) -> None:
        self.seconds = seconds
        self.why = why  # the settings it comes from, for the log line
        self.cut_at = -math.inf  # when the watchdog last cut one of this engine's calls
        self._told = False  # the cut is logged once, until a call comes back in time

    def extend(self, dbapi_connection: Any, seconds: float) -> None:
        """Give a checked-out connection longer (a migration), from now."""
        _WATCHDOG.arm(dbapi_connection, time.monotonic() + seconds, self)

    def cut(self, dbapi_connection: Any) -> bool:
        """Shut the connection's socket down, so the call blocked on it fails as a lost
        connection; True when this is news worth a log line."""
        try:
            fd = dbapi_connection.pgconn.socket
        except Exception:  # noqa: BLE001 - closed meanwhile: nothing is waiting on it
            return False
        with contextlib.suppress(OSError), socket.socket(fileno=os.dup(fd)) as sock:
            sock.shutdown(socket.SHUT_RDWR)  # on a duplicate: the driver's own descriptor stays valid
        self.cut_at = time.monotonic()
        news, self._told = not self._told, True
        return news

    def tell(self) -> None:
        log.warning(
            "no answer from PostgreSQL within %gs (%s): connection closed, the pool reconnects",
            self.seconds,
            self.why,
        )


def install(engine: Engine, seconds: float, why: str, ping_if_idle: float) -> CallDeadline:
    """Watch every connection of the engine from checkout to checkin; ping those idle longer
    than ping_if_idle seconds before use."""
    deadline = CallDeadline(seconds, why)
    _DEADLINES[engine] = deadline

    @event.listens_for(engine, "connect", insert=True)  # before the dialect's first queries on it
    def on_connect(dbapi_connection: Any, record: Any) -> None:
        record.info[_CHECKED_IN] = time.monotonic()  # fresh: no ping needed
        _WATCHDOG.arm(dbapi_connection, time.monotonic() + seconds, deadline)

    @event.listens_for(engine, "checkout")
    def on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        now = time.monotonic()
        _WATCHDOG.arm(dbapi_connection, now + seconds, deadline)
        checked_in = record.info.get(_CHECKED_IN, -math.inf)
        if checked_in < deadline.cut_at:
            raise DisconnectionError("pooled connection idle while a call went unanswered")  # the pool reconnects
        if now - checked_in < ping_if_idle:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as exc:
            raise DisconnectionError(f"pooled connection is gone: {exc}") from exc  # the pool reconnects

    @event.listens_for(engine, "checkin")
    def on_checkin(dbapi_connection: Any, record: Any) -> None:
        if dbapi_connection is not None and _WATCHDOG.disarm(dbapi_connection):
            deadline._told = False  # answered in time: a later cut is news again
        record.info[_CHECKED_IN] = time.monotonic()

    @event.listens_for(engine, "invalidate")
    def on_invalidate(dbapi_connection: Any, _record: Any, _exception: Any) -> None:
        if dbapi_connection is not None:
            _WATCHDOG.disarm(dbapi_connection)

    return deadline


def deadline_of(engine: Engine) -> CallDeadline | None:
    """The deadline installed on an engine (None for SQLite)."""
    return _DEADLINES.get(engine)


class _Watchdog:
    """One thread per process that cuts the calls past their deadline.

    Arming and disarming cost a lock and a dict update per transaction; the thread sleeps
    until the nearest deadline, and without any armed connection until the next arm.
    """

    def __init__(self) -> None:
        self.forget()

    def forget(self) -> None:
        """Start empty, with no thread (also in a forked child: the parent's thread and whatever
        lock it held are not there)."""
        self._lock = threading.Lock()
        self._armed: dict[int, tuple[float, Any, CallDeadline]] = {}
        self._nearest = math.inf
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def arm(self, dbapi_connection: Any, at: float, deadline: CallDeadline) -> None:
        with self._lock:
            # The entry holds the connection, so its id cannot be reused while it is armed.
            self._armed[id(dbapi_connection)] = (at, dbapi_connection, deadline)
            if at < self._nearest:
                self._nearest = at
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name="pq-call-deadlines", daemon=True)
                    self._thread.start()
                self._wake.set()

    def disarm(self, dbapi_connection: Any) -> bool:
        """Forget the connection; True when it was still armed (its call came back in time)."""
        with self._lock:
            return self._armed.pop(id(dbapi_connection), None) is not None

    def _run(self) -> None:
        while True:
            news = []
            with self._lock:  # held while cutting: a connection disarmed meanwhile is never cut
                now = time.monotonic()
                for key, (at, dbapi_connection, deadline) in list(self._armed.items()):
                    if at <= now:
                        del self._armed[key]
                        if deadline.cut(dbapi_connection):
                            news.append(deadline)
                self._nearest = min((at for at, _, _ in self._armed.values()), default=math.inf)
                self._wake.clear()
                pause = None if self._nearest == math.inf else self._nearest - now
            for deadline in news:
                deadline.tell()
            self._wake.wait(pause)


_WATCHDOG = _Watchdog()
_DEADLINES: weakref.WeakKeyDictionary[Engine, CallDeadline] = weakref.WeakKeyDictionary()
os.register_at_fork(after_in_child=_WATCHDOG.forget)
