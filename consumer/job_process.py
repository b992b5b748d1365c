"""The process that runs one job: forked from the warm helper, in a process group of its own.

It cannot outlive the consumer in two ways: the helper, which watches the consumer's lifeline,
kills the whole group, the algorithm's own children included, as soon as the consumer is gone;
and the kernel kills the job process itself when its parent (the helper) exits.

A held payload waits on the process's start gate, a socket only the helper writes to (the seat's
hand-off, docs/architecture.md). The helper sends fixed-size messages on it (`GATE`):

- `GO`: start now (the job process before it is reaped, and the kill deadline still ahead);
- `ARM`, with a pidfd of the job process before it (SCM_RIGHTS), the helper's end of that
  process's gate (its word, see below) and the kill deadline: start by yourself the moment it
  says DONE, or the moment that pidfd is readable (the kernel says the process has ended: its
  files and memory are released, it is a zombie its parent has not reaped), if the deadline is
  still ahead; kill the whole group of the process before first (SIGKILL: pending in every
  member when kill(2) returns, so none of them runs an instruction of its own after);
- `MOVE`, with a later kill deadline (the running job's lease was renewed);
- end of file: never start (the helper is gone, or let the deadline pass).

A deadline the job process knows is never later than the helper's (it learns of a renewal
after the helper), so it never starts past the helper's; when it wakes past its own, it waits
for the helper's word instead, which judges by the latest deadline.

The job process keeps its gate while its job runs and writes one message back on it at the end:
`DONE`, once the algorithm has returned, its streams are flushed, every other descriptor is
closed (`close_all_but`) and its `Answer` is in the consumer's socket (`say_done`). The job held
behind it, armed with that gate's other end, hears it itself (one wake-up: its own), kills the
process's whole group and starts; a job armed too late to hear it (the word came first) is
opened by the helper, which heard it, killed the group and says go. Either way the held job
starts on that word, not on the kernel's slower word that the process is gone (its memory
released: a millisecond or more). A job process that never says it (killed, crashed, its
algorithm never returned) leaves the start to its pidfd, as before. Whatever a job process
writes on its gate can only end its own group and start its own follower: only the follower and
the helper read it, and both kill the writer's group first.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import pickle
import select
import signal
import socket
import struct
import sys
import time
from typing import Any

from consumer.channel import Channel
from consumer.loading import Algorithm, call_algorithm
from consumer.messages import Answer, Began, Payload, Waiting
from consumer.processes import die_with_parent

# One start-gate message: what (GO, ARM, MOVE from the helper; DONE from the job process), a
# monotonic kill deadline, the pid of the job process before (ARM). A SOCK_SEQPACKET socket keeps
# each one whole.
GATE = struct.Struct("=cdi")
GO, ARM, MOVE, DONE = b"g", b"a", b"d", b"e"


# Above every descriptor a job process may hold (close_range(2) takes the whole span at once).
MAX_FD = 2**31 - 1


def gate_message(what: bytes, deadline: float = math.inf, before: int = 0) -> bytes:
    """One start-gate message (the helper's end)."""
    return GATE.pack(what, deadline, before)


def run_job_process(
    sock: socket.socket, function: Algorithm, settings: Any, helper_pid: int, gate: socket.socket
) -> None:
    """Become a job process: own group, parent-death signal; then run one payload.

    A held payload runs only once its start gate says so (see the module's docstring): it says
    Began first, so a job process gone without saying it never ran its held job."""
    os.setsid()
    die_with_parent(signal.SIGKILL)
    if os.getppid() != helper_pid:  # the helper died before the line above took effect
        return
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    conn = Channel(sock)
    rehearse_the_end()
    conn.send(Waiting(os.getpid()))
    try:
        job: Payload = conn.recv()
    except (EOFError, OSError):  # the consumer no longer wants this spare
        os.killpg(0, signal.SIGKILL)
        return
    if job.held:
        began = wait_for_start(gate, conn)
        if began is None:
            os.killpg(0, signal.SIGKILL)
            return
        conn.send(Began(os.getpid(), began))
    kind, text = call_algorithm(function, job.payload, settings)
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    close_all_but(conn.fileno(), gate.fileno())
    conn.send(Answer(job.job_id, kind, text))
    say_done(gate)


def close_all_but(*keep: int) -> None:
    """Close every descriptor but the standard streams and `keep`, as this process's exit would
    (a licence server's connection among them), so the held job never starts beside a connection
    its algorithm left open here. Before the Answer: the consumer, which kills this process once
    it has read the Answer, then rarely beats its DONE, which follows at once (closing after the
    Answer, the consumer's kill came first in 36 of 199 hand-offs, and the held job waited for
    this process's teardown instead)."""
    low = 3
    for fd in sorted(keep):
        os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, MAX_FD)


def say_done(gate: socket.socket) -> None:
    """Tell whoever listens on the gate (the held job, or the helper) that this job is over,
    after its Answer: the listener kills this process's group and the held job starts. The
    caller exits next: a helper that is stopped or gone leaves the start to this process's pidfd."""
    with contextlib.suppress(OSError):
        gate.send(gate_message(DONE))


def rehearse_the_end() -> None:
    """Make the messages a job process ends with once, before it is ready (nothing is sent).

    A forked process faults in the pages of code it runs for the first time; the answer's JSON
    and pickling then came between the algorithm's end and its answer, inside the seat's gap
    (0.28 ms at p50 from a `mark` job's end to the answer made, 0.11 ms with this done first)."""
    pickle.dumps(Answer(0, "ok", json.dumps({"ok": True}, allow_nan=False)), protocol=pickle.HIGHEST_PROTOCOL)
    pickle.dumps(Began(0, time.monotonic()), protocol=pickle.HIGHEST_PROTOCOL)
    gate_message(DONE)


def wait_for_start(gate: socket.socket, consumer: Channel) -> float | None:
    """Wait on the start gate: the monotonic moment the held job may start, or None if never.

    The consumer sends nothing more after the payload: its channel turning readable means it is
    gone (or dropped this process), and a held job whose consumer is gone never starts."""
    waiting = GateWait()
    try:
        return waiting.wait(gate, consumer)
    finally:
        waiting.close()  # the algorithm never holds the job before's pidfd nor its word


class GateWait:
    """A held job process's wait on its gate, armed or not: what it watches of the job before."""

    def __init__(self) -> None:
        self.deadline = -math.inf
        self.before: int | None = None  # a pidfd of the job process before, once armed
        self.word: int | None = None  # the helper's end of the gate of the job process before (its DONE)
        self.before_pid = 0
        self.poller = select.poll()

    def wait(self, gate: socket.socket, consumer: Channel) -> float | None:
        self.poller.register(gate, select.POLLIN)
        self.poller.register(consumer.fileno(), select.POLLIN)
        while True:
            ready = {fd for fd, _ in self.poller.poll()}
            if consumer.fileno() in ready:
                return None
            if gate.fileno() in ready:  # the helper's word first: a later deadline counts before the end
                what = self._read_gate(gate)
                if what == GO:
                    return time.monotonic()
                if what not in (ARM, MOVE):
                    return None  # end of file: the gate closed unopened
                continue
            ended = self.before is not None and self.before in ready  # the job process before has ended
            if not ended and self.word is not None and self.word in ready:
                ended = self._heard_done()
            if ended:
                now = time.monotonic()
                self._forget_before()
                if now < self.deadline:
                    # What it started in its group dies now, before anything of this job runs (a pid
                    # is handed out again only once the pid space wraps).
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(self.before_pid, signal.SIGKILL)
                    return now
                # Past the deadline it knows: the helper, which knows the latest, says go or closes the gate.

    def _read_gate(self, gate: socket.socket) -> bytes:
        """One message of the helper's: what it says (b"" for the gate's end); an ARM's
        descriptors are kept and watched, a deadline is remembered."""
        try:
            data, fds, _flags, _address = socket.recv_fds(gate, GATE.size, 2)
        except OSError:
            return b""
        if len(data) != GATE.size:
            for fd in fds:
                os.close(fd)
            return b""
        what, when, pid = GATE.unpack(data)
        if what != GO:
            self.deadline = max(self.deadline, when)
        if what == ARM and fds and self.before is None:
            self.before, self.before_pid = fds.pop(0), pid
            self.poller.register(self.before, select.POLLIN)
            if fds:
                self.word = fds.pop(0)
                self.poller.register(self.word, select.POLLIN)
        for fd in fds:
            os.close(fd)
        return bytes(what)

    def _heard_done(self) -> bool:
        """Read the job before's word, if it is for this process (the helper may read it first): True
        for a DONE; anything else, or its end, and this process stops listening to it."""
        assert self.word is not None
        for _ in range(2):
            try:
                said = os.read(self.word, GATE.size + 1)
            except BlockingIOError:  # the helper read it first: its go follows
                return False
            except ConnectionResetError:  # it ended with a message to it unread: said once, first
                continue
            except OSError:
                said = b""
            if len(said) == GATE.size and said[:1] == DONE:
                return True
            break
        self.poller.unregister(self.word)
        os.close(self.word)
        self.word = None
        return False

    def _forget_before(self) -> None:
        for fd in (self.before, self.word):
            if fd is not None:
                self.poller.unregister(fd)
                os.close(fd)
        self.before = self.word = None

    def close(self) -> None:
        for fd in (self.before, self.word):
            if fd is not None:
                os.close(fd)
        self.before = self.word = None
