"""The process that runs one job: forked from the warm helper, in a process group of its own.

It cannot outlive the consumer in two ways: the helper, which watches the consumer's lifeline,
kills the whole group, the algorithm's own children included, as soon as the consumer is gone;
and the kernel kills the job process itself when its parent (the helper) exits.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
from typing import Any

from consumer.channel import Channel
from consumer.loading import Algorithm, call_algorithm
from consumer.messages import Answer, Payload, Waiting
from consumer.processes import die_with_parent

GO = b"g"  # the one byte the helper writes on a held job's start gate


def run_job_process(sock: socket.socket, function: Algorithm, settings: Any, helper_pid: int, gate: int) -> None:
    """Become a job process: own group, parent-death signal; then run one payload.

    A held payload runs only once the helper writes one byte on `gate` (the job before it on the
    seat is reaped); end of file there (the helper is gone, or it let the kill deadline pass)
    means it never runs."""
    os.setsid()
    die_with_parent(signal.SIGKILL)
    if os.getppid() != helper_pid:  # the helper died before the line above took effect
        return
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    conn = Channel(sock)
    conn.send(Waiting(os.getpid()))
    try:
        job: Payload = conn.recv()
    except (EOFError, OSError):  # the consumer no longer wants this spare
        os.killpg(0, signal.SIGKILL)
        return
    if job.held and os.read(gate, 1) != GO:
        os.killpg(0, signal.SIGKILL)
        return
    os.close(gate)
    kind, text = call_algorithm(function, job.payload, settings)
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    conn.send(Answer(job.job_id, kind, text))
