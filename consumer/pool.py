"""The consumer's side of the warm helper: keeps one job process forked and ready for the next job."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from multiprocessing import reduction
from multiprocessing.connection import Connection
from typing import Any

from consumer.loading import AlgorithmUnavailable
from consumer.logs import event
from consumer.processes import kill_group, kill_process, process_gone, readable, wait_readable
from pqueue import Settings

log = logging.getLogger("consumer")

# How long the consumer waits for the helper to import the algorithm (pandas takes seconds).
HELPER_START_TIMEOUT = 300.0
# How long a job process gets to disappear after SIGKILL before the consumer moves on.
REAP_TIMEOUT = 5.0
# While waiting for the helper's word that a job process was reaped, how often to look for its end ourselves.
REAP_LOOK_EVERY = 0.01


@dataclass
class JobProcess:
    """One forked job process: its pid (also its process group) and its socket."""

    pid: int
    conn: Connection
    ready: bool = False
    wait_status: int | None = None
    overdue: float | None = None  # seconds past its kill deadline when the helper killed it

    @property
    def exited(self) -> bool:
        """True once the helper has reaped it."""
        return self.wait_status is not None


class AlgorithmProcesses:
    """Starts the helper, keeps spare job processes ready, and kills job process groups.

    One spare is kept; `spares_wanted = 2` (set by the consumer while jobs come back to back)
    has the next one forked while the current one is still waiting, so a short job never waits
    for a fork.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        # The consumer never writes to the lifeline: its end closing (exit, SIGKILL) is the message.
        self._lifeline_reader, self._lifeline_writer = os.pipe()
        self._helper: subprocess.Popen[bytes] | None = None
        self._commands: Connection | None = None
        self._spares: list[JobProcess] = []  # oldest first; ready or not yet
        self._forks_pending = 0
        self.spares_wanted = 1
        self._children: dict[int, JobProcess] = {}
        self._retired: list[JobProcess] = []  # killed after answering; reaped before the next job
        self._sending = threading.Lock()  # the lease thread sends deadlines while the loop sends forks

    # -- the helper ----------------------------------------------------------------------------

    def start(self) -> None:
        """Start the helper; it imports the algorithm in the background (see wait_ready)."""
        ours, theirs = socket.socketpair()
        command = [
            sys.executable,
            "-P",  # the consumer package from where it is installed, never shadowed by the working directory
            "-m",
            "consumer.helper",
            f"--commands={theirs.fileno()}",
            f"--lifeline={self._lifeline_reader}",
            f"--consumer-pid={os.getpid()}",
        ]
        # From the main thread: the parent-death signal follows the thread that started the helper.
        # start_new_session: the helper's own session, made before it runs any code.
        self._helper = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            pass_fds=(theirs.fileno(), self._lifeline_reader),
            start_new_session=True,
            close_fds=True,
        )
        theirs.close()
        self._commands = Connection(ours.detach())
        self._commands.send(("start", self.settings.algorithm, self.settings.model_dump_json()))
        self._spares, self._forks_pending = [], 0

    def wait_ready(self, timeout: float = HELPER_START_TIMEOUT) -> None:
        """Block until the helper has imported the algorithm; AlgorithmUnavailable if it cannot."""
        assert self._commands is not None and self._helper is not None
        started = time.monotonic()
        if not self._commands.poll(timeout):
            raise AlgorithmUnavailable(f"the algorithm process did not start within {timeout:.0f}s")
        try:
            message = self._commands.recv()
        except (EOFError, OSError):
            code = self._helper.wait(5)
            raise AlgorithmUnavailable(f"the algorithm process died while starting (exit code {code})") from None
        if message[0] == "broken":
            raise AlgorithmUnavailable(message[1])
        event(
            log,
            "algorithm_ready",
            algorithm=self.settings.algorithm,
            pid=self._helper.pid,
            seconds=round(time.monotonic() - started, 3),
        )

    @property
    def helper_alive(self) -> bool:
        """False when the helper has died (the consumer then starts another)."""
        return self._helper is not None and self._helper.poll() is None

    def handles(self) -> list[Any]:
        """What the supervising loop waits on besides the job: helper messages (and its end, EOF)."""
        assert self._commands is not None
        return [self._commands]

    def pump(self) -> None:
        """Read every message the helper has sent: forked processes and reaped ones."""
        assert self._commands is not None
        try:
            while readable(self._commands):
                self._handle(self._commands.recv())
        except (EOFError, OSError):  # the helper is gone: reap it so helper_alive says so
            self._end_helper()

    def _handle(self, message: tuple[Any, ...]) -> None:
        assert self._commands is not None
        kind = message[0]
        if kind == "forked":
            fd = reduction.recv_handle(self._commands)
            process = JobProcess(pid=message[1], conn=Connection(fd))
            self._children[process.pid] = process
            self._spares.append(process)
            self._forks_pending = max(0, self._forks_pending - 1)
        elif kind == "exited":
            child = self._children.pop(message[1], None)
            if child is not None:
                child.wait_status = message[2]
        elif kind == "overdue":
            child = self._children.get(message[1])
            if child is not None:
                child.overdue = message[2]
        elif kind == "fork_failed":
            self._forks_pending = max(0, self._forks_pending - 1)
            event(log, "fork_failed", level=logging.WARNING, error=message[1])

    # -- job processes -------------------------------------------------------------------------

    def ensure_spare(self, timeout: float) -> bool:
        """Make sure a ready job process is waiting; False when none is ready within the timeout.

        A helper that is alive but forks nothing in that time (stopped, hung) is replaced, so the
        consumer does not wait on it for ever.
        """
        deadline = time.monotonic() + timeout
        while True:
            if not self.helper_alive:
                self._restart_helper()
            if self._ready_spare() is not None:
                return True
            self.fork_next()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                event(log, "helper_unresponsive", level=logging.ERROR, seconds=timeout, action="restarting it")
                self._restart_helper()
                return False
            wait_readable([*self.handles(), *(spare.conn for spare in self._spares)], remaining)

    def spare_ready(self, timeout: float) -> bool:
        """True when a spare is (or within the timeout becomes) ready; never restarts the helper.

        The consumer asks this before claiming the next job in the transaction that records the
        last one's outcome: a claim must never wait for a job process.
        """
        deadline = time.monotonic() + timeout
        while self.helper_alive:
            if self._ready_spare() is not None:
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not (self._spares or self._forks_pending):
                return False
            wait_readable([*self.handles(), *(spare.conn for spare in self._spares)], remaining)
        return False

    def _ready_spare(self) -> JobProcess | None:
        """The oldest ready spare, after reading the helper's news and dropping dead spares."""
        self.pump()
        for spare in list(self._spares):
            if spare.exited:
                self._drop(spare)
            elif self._check_ready(spare):
                return spare
        return None

    def _check_ready(self, spare: JobProcess) -> bool:
        if spare.ready:
            return True
        try:
            if readable(spare.conn):
                spare.conn.recv()  # ("ready", pid): its group and death signal are set up
                spare.ready = True
        except (EOFError, OSError):
            self._drop(spare)
        return spare.ready

    def _drop(self, spare: JobProcess) -> None:
        """A spare that died before its job: kill whatever it left in its group."""
        self._spares.remove(spare)
        self.discard(spare)

    def take_spare(self) -> JobProcess:
        """Hand the oldest ready spare to a job; the one before it must be gone first (see retire).

        The next spare is forked only once the job has its payload (fork_next): forking first
        would make the helper compete for the CPU with the job that is about to start.
        """
        spare = next(spare for spare in self._spares if spare.ready)
        self._spares.remove(spare)
        self._reap_retired()
        return spare

    def fork_next(self) -> None:
        """Ask the helper for spares up to `spares_wanted` (while the job that just started runs)."""
        while len(self._spares) + self._forks_pending < self.spares_wanted:
            if not self._send("fork"):  # the helper is gone: ensure_spare starts another before the next claim
                return
            self._forks_pending += 1

    def set_deadline(self, process: JobProcess, when: float) -> bool:
        """Tell the helper the monotonic moment by which the job's process group must be dead.

        Called before the payload goes out and after every renewal (from the lease thread); the
        helper enforces it even while this process is stopped. False when the helper is gone
        (then the job process is gone with it).
        """
        return self._send(("deadline", process.pid, when))

    def _send(self, message: Any) -> bool:
        commands = self._commands
        if commands is None:
            return False
        with self._sending:
            try:
                commands.send(message)
            except OSError:  # also a channel closed by a helper restart
                return False
        return True

    def trim_spares(self) -> None:
        """Keep only `spares_wanted` spares (the consumer went idle): the newest extra ones go."""
        while len(self._spares) > max(1, self.spares_wanted):
            self.retire(self._spares.pop())

    def terminate(self, process: JobProcess) -> None:
        """SIGTERM the job's whole process group (the timeout's polite first step)."""
        kill_group(process.pid, signal.SIGTERM)

    def retire(self, process: JobProcess) -> None:
        """SIGKILL a process group now (a job that answered, a spare no longer wanted); its
        reaping is awaited later.

        A job process that sent its answer exits by itself; the kill only makes sure nothing
        it started lives on. A killed process runs no further instruction of its own, so the
        outcome can be recorded at once, and the helper's word that the process is gone is
        awaited before the next job is handed out (take_spare), normally long since arrived.
        """
        self._kill(process)
        self._retired.append(process)

    def _reap_retired(self) -> None:
        while self._retired:
            self._await_reaped(self._retired.pop(), REAP_TIMEOUT)

    def discard(self, process: JobProcess, timeout: float = REAP_TIMEOUT) -> None:
        """SIGKILL the job's process group and wait (briefly) until the job process is reaped."""
        self._kill(process)
        self._await_reaped(process, timeout)

    def _await_reaped(self, process: JobProcess, timeout: float) -> None:
        """Until the helper says it reaped the process, or the kernel shows it dead (a stopped
        helper cannot say so, and its word must not hold up the next job's start)."""
        deadline = time.monotonic() + timeout
        while not process.exited and self.helper_alive and time.monotonic() < deadline:
            if process_gone(process.pid):
                break
            wait_readable(self.handles(), min(REAP_LOOK_EVERY, deadline - time.monotonic()))
            self.pump()
        process.conn.close()
        self._children.pop(process.pid, None)

    @staticmethod
    def _kill(process: JobProcess) -> None:
        kill_group(process.pid, signal.SIGKILL)
        if not process.exited:
            kill_process(process.pid, signal.SIGKILL)

    def _end_helper(self, patience: float = 0.0) -> int | None:
        """Reap the helper, killing it if it is still there after `patience` seconds; its exit code."""
        if self._helper is None:
            return None
        try:
            return self._helper.wait(patience)
        except subprocess.TimeoutExpired:
            self._helper.kill()
            return self._helper.wait()

    def _kill_children(self) -> None:
        self._retired.clear()
        self._spares, self._forks_pending = [], 0
        for child in list(self._children.values()):
            kill_group(child.pid)
            kill_process(child.pid)
            child.conn.close()
        self._children.clear()
        if self._commands is not None:
            self._commands.close()

    def _restart_helper(self) -> None:
        exitcode = self._end_helper()
        event(log, "algorithm_process_restart", level=logging.WARNING, exitcode=exitcode)
        self._kill_children()
        self.start()
        self.wait_ready()

    def close(self) -> None:
        """Kill every job process group, stop the helper (it exits when its channel closes)."""
        self._kill_children()
        self._end_helper(patience=2.0)
        os.close(self._lifeline_writer)
        os.close(self._lifeline_reader)
