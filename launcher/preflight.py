"""What would make a start fail, found before anything starts: pqueue already running in this
PQ_HOME, or a port the intake or the dashboard needs already taken."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import socket
from pathlib import Path
from typing import IO

import psutil

from pqueue import Settings

RUN_LOCK = "pq-run.lock"  # held by the running pq-run for its whole life
RUN_PID = "pq-run.pid"
SUPERVISORD_PID = "supervisord.pid"  # written by supervisord (supervisord.conf's pidfile)


class AlreadyRunning(Exception):
    """pqueue runs here already; the message says which process."""


def hold_the_home(run_dir: Path) -> IO[str]:
    """Take this PQ_HOME for this process (an exclusive lock held until exit), or raise
    AlreadyRunning naming the process that holds it: two systems on one database and one set of
    ports would only crash-loop each other."""
    home = run_dir.parent.parent
    lock = open(run_dir / RUN_LOCK, "a")  # noqa: SIM115 - held for the life of the process
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        holder = _live_pid(run_dir / RUN_PID, "pq-run")
        raise AlreadyRunning(
            f"pqueue is already running here (pid {holder or '?'}, in {home}): Ctrl-C in its terminal stops it"
        ) from None
    supervisord = _live_pid(run_dir / SUPERVISORD_PID, "supervisord")
    if supervisord is not None:  # started some other way than make run
        lock.close()
        raise AlreadyRunning(
            f"pqueue is already running here (supervisord pid {supervisord}, in {home}): "
            f"`supervisorctl -c {home / 'supervisord.conf'} shutdown` stops it"
        )
    (run_dir / RUN_PID).write_text(f"{os.getpid()}\n")
    return lock


def _live_pid(path: Path, name: str) -> int | None:
    """The pid in `path` if that process is alive and is `name` (not a reused pid)."""
    try:
        pid = int(path.read_text().strip())
        command = " ".join(psutil.Process(pid).cmdline())
    except (OSError, ValueError, psutil.Error):
        return None
    return pid if pid != os.getpid() and name in command else None


def port_problems(settings: Settings) -> list[str]:
    """One line for each port the programs need that they could not listen on."""
    wanted = [
        ("PQ_PRODUCER_PORT", settings.producer_host, settings.producer_port),
        ("PQ_DASHBOARD_PORT", settings.dashboard_host, settings.dashboard_port),
    ]
    problems = []
    for variable, host, port in wanted:
        problem = _cannot_listen(variable, host, port)
        if problem:
            problems.append(problem)
    return problems


def _cannot_listen(variable: str, host: str, port: int) -> str | None:
    if port == 0:  # any free port: nothing to check
        return None
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    except socket.gaierror as exc:
        return f"cannot listen on {host}:{port}: {exc.strerror}"
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn and Streamlit do
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return (
                    f"port {port} ({variable}) is already in use{_holder(port)}: "
                    f"stop that program, or start with {variable}=<another port>"
                )
            return f"cannot listen on {host}:{port} ({variable}): {exc.strerror}"
    return None


def _holder(port: int) -> str:
    """' by pid N (name)' for the process listening on the port, when the system tells."""
    with contextlib.suppress(psutil.Error, OSError):
        for conn in psutil.net_connections(kind="inet"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port and conn.pid:
                return f" by pid {conn.pid} ({psutil.Process(conn.pid).name()})"
    return ""
