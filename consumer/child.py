"""The process that runs one job: forked from the warm helper, in a process group of its own.

It cannot outlive the consumer in two ways: the kernel kills it when its parent (the helper,
which itself dies with the consumer) exits, and a watchdog process in its group kills the
whole group, the algorithm's own children included, as soon as the consumer's lifeline closes.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
from multiprocessing.connection import Connection
from typing import Any

from consumer.loading import Algorithm, call_algorithm
from consumer.processes import die_with_parent


def run_child(sock: socket.socket, lifeline_fd: int, function: Algorithm, settings: Any, helper_pid: int) -> None:
    """Become a job process: own group, parent-death signal, watchdog; then run one payload."""
    os.setsid()
    die_with_parent(signal.SIGKILL)
    if os.getppid() != helper_pid:  # the helper died before the line above took effect
        return
    _start_watchdog(lifeline_fd, sock.fileno())
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    conn = Connection(sock.detach())
    conn.send(("ready", os.getpid()))
    try:
        job_id, payload = conn.recv()
    except (EOFError, OSError):  # the consumer no longer wants this spare
        os.killpg(0, signal.SIGKILL)
        return
    outcome = call_algorithm(function, payload, settings)
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    conn.send((job_id, *outcome))


def _start_watchdog(lifeline_fd: int, job_socket_fd: int) -> None:
    """Fork a tiny process that kills this group when the consumer is gone.

    A process, not a thread: it needs no share of the interpreter lock (an algorithm in C code
    can hold it for minutes), and it lives on when the kernel kills the job process itself,
    which is what lets it kill the job's own children too.
    """
    if os.fork() != 0:
        return
    try:
        os.close(job_socket_fd)  # the consumer must see the socket close when the job process dies
        while True:
            try:
                if not os.read(lifeline_fd, 64):
                    break  # end of file: the consumer exited or was killed
            except OSError:
                break
        os.killpg(0, signal.SIGKILL)
    finally:
        os._exit(0)
