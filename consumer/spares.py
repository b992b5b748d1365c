"""The job processes: spares forked ahead by the helper and waiting for a job, and the two verbs
that end one, `kill` and `reap`.

One spare is kept ready (two for a consumer claiming ahead, `keep_while_idle`); while jobs come
back to back (`expect_back_to_back(True)`) a second one is forked as soon as a job starts, so a
short job never waits for a fork. A job process that
answered is killed at once and reaped before the next spare is handed out (`take`): the outcome
is recorded without waiting for the helper's word that it is gone, and the next job never starts
beside it.
"""

from __future__ import annotations

import logging
import signal
import time
from dataclasses import dataclass

from consumer.channel import Channel
from consumer.helper_link import HelperLink
from consumer.logs import event
from consumer.messages import (
    Began,
    Deadline,
    Exited,
    Fork,
    Forked,
    ForkFailed,
    FromHelper,
    Overdue,
    Ready,
    StartAfter,
)
from consumer.processes import kill_group, kill_process, process_gone, readable, wait_readable

log = logging.getLogger("consumer")

# How long a killed job process gets to disappear before the consumer moves on.
REAP_TIMEOUT = 5.0
# While waiting for the helper's word that a job process was reaped, how often to look for its end ourselves.
REAP_LOOK_EVERY = 0.01


@dataclass
class JobProcess:
    """One forked job process: its pid (also its process group) and its channel."""

    pid: int
    channel: Channel
    ready: bool = False  # it said Waiting: its group and death signal are set up
    wait_status: int | None = None  # set once the helper reaped it
    overdue: float | None = None  # seconds past its kill deadline when the helper killed it
    held: bool = False  # it was given a held payload: it starts on its gate and says Began
    began: float | None = None  # monotonic; when its held payload started (its own word)

    @property
    def exited(self) -> bool:
        """True once the helper has reaped it."""
        return self.wait_status is not None


class Spares:
    """The job processes the helper forked for this consumer."""

    def __init__(self, link: HelperLink) -> None:
        self.link = link
        link.on_message = self._on_message
        self._wanted = 1
        self._idle_wanted = 1  # kept ready while no job runs
        self._spares: list[JobProcess] = []  # oldest first; ready or not yet
        self._forks_pending = 0
        self._living: dict[int, JobProcess] = {}  # every job process not yet reaped, by pid
        self._killed: list[JobProcess] = []  # killed, to be reaped before the next one is handed out

    # -- what the helper says --------------------------------------------------------------------

    def pump(self) -> None:
        """Read everything the helper has said: processes forked, reaped, killed at their deadline."""
        self.link.pump()

    def handles(self) -> list[Channel]:
        """What a loop waits on to hear from the helper."""
        return self.link.handles()

    @property
    def helper_alive(self) -> bool:
        """False when the helper has died (with it, every job process)."""
        return self.link.alive

    def _on_message(self, message: FromHelper, passed: Channel | None) -> None:
        match message:
            case Forked(pid):
                assert passed is not None, "a Forked message comes with its socket"
                process = JobProcess(pid, passed)
                self._living[pid] = process
                self._spares.append(process)
                self._forks_pending = max(0, self._forks_pending - 1)
            case Exited(pid, wait_status):
                reaped = self._living.pop(pid, None)
                if reaped is not None:
                    reaped.wait_status = wait_status
            case Overdue(pid, late):
                killed = self._living.get(pid)
                if killed is not None:
                    killed.overdue = late
            case ForkFailed(why):
                self._forks_pending = max(0, self._forks_pending - 1)
                event(log, "fork_failed", level=logging.WARNING, error=why)
            case Ready():
                pass

    # -- spares ----------------------------------------------------------------------------------

    def ensure(self, timeout: float) -> bool:
        """Make sure a ready spare waits; False when none is ready within the timeout.

        A dead helper is replaced; so is one that is alive but forks nothing in that time
        (stopped, hung), so the consumer does not wait on it for ever.
        """
        deadline = time.monotonic() + timeout
        while True:
            if not self.helper_alive:
                self._restart_helper()
            if self._ready_spare() is not None:
                return True
            self.fork_ahead()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                event(log, "helper_unresponsive", level=logging.ERROR, seconds=timeout, action="restarting it")
                self._restart_helper()
                return False
            wait_readable([*self.handles(), *(spare.channel for spare in self._spares)], remaining)

    def ready(self, timeout: float) -> bool:
        """True when a spare is (or within the timeout becomes) ready; never restarts the helper.

        Asked before claiming the next job in the transaction that records the last outcome: a
        claim must never wait for a job process.
        """
        deadline = time.monotonic() + timeout
        while self.helper_alive:
            if self._ready_spare() is not None:
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not (self._spares or self._forks_pending):
                return False
            wait_readable([*self.handles(), *(spare.channel for spare in self._spares)], remaining)
        return False

    def take(self) -> JobProcess:
        """Hand out the oldest ready spare, once every job process killed before it is reaped.

        The next spare is forked only once the job has its payload (fork_ahead): forking first
        would make the helper compete for the CPU with the job that is about to start.
        """
        spare = next(spare for spare in self._spares if spare.ready)
        self._spares.remove(spare)
        while self._killed:
            self.reap(self._killed.pop(), REAP_TIMEOUT)
        return spare

    def fork_ahead(self) -> None:
        """Ask the helper for spares up to the number wanted (while the job that just started runs)."""
        while len(self._spares) + self._forks_pending < self._wanted:
            if not self.link.send(Fork()):  # the helper is gone: ensure() starts another before the next claim
                return
            self._forks_pending += 1

    def keep_while_idle(self, count: int) -> None:
        """Keep `count` spares ready while no job runs. A consumer claiming ahead keeps two: the
        first job of a backlog takes one and its hold the other, which a spare forked once that
        job has started may not be ready for in time (its fork and first steps take a CPU's
        turns: 8 to 16 ms at load 5, longer than a 50 ms job under heavier load)."""
        self._idle_wanted = count
        self._wanted = max(self._wanted, count)

    def expect_back_to_back(self, busy: bool) -> None:
        """Jobs come back to back: keep a second spare forking; or not any more (idle): keep the
        idle number, and kill the newest extra ones."""
        self._wanted = 2 if busy else self._idle_wanted
        while len(self._spares) > self._wanted:
            self.kill(self._spares.pop())

    def set_deadline(self, process: JobProcess, when: float) -> bool:
        """Have the helper kill the process's group at the monotonic moment `when`, even while
        this process is stopped; False when the helper is gone (the job process with it)."""
        return self.link.send(Deadline(process.pid, when))

    def start_after(self, held: JobProcess, running: JobProcess) -> bool:
        """Have the helper start `held` (given its payload held, and its kill deadline) as soon as
        `running` is reaped, even while this process is stopped; False when the helper is gone."""
        return self.link.send(StartAfter(held.pid, running.pid))

    def wait_started(self, held: JobProcess, timeout: float) -> bool:
        """Whether the held process said it began its job (within the timeout): False when it
        ended without saying so (its gate closed unopened, killed at its deadline, its helper
        gone) or says nothing yet (stopped, or the job before it still ending). Its word, not
        the helper's: the helper may be stopped while the held job runs. A False is not final
        until the process is gone (`end_held`)."""
        deadline = time.monotonic() + timeout
        while True:
            if self._read_began(held) or held.began is not None:
                return held.began is not None
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            wait_readable([held.channel], remaining)

    def end_held(self, held: JobProcess) -> float | None:
        """Kill a held process and wait until it is gone; then, and only then, its word is final:
        the moment it began its job, or None if it never did (it says Began before the
        algorithm runs, and a killed process says nothing more)."""
        self.kill(held)
        self.reap(held)
        return held.began

    @staticmethod
    def _read_began(held: JobProcess) -> bool:
        """Read the held process's Began if it waits; True when the process will say nothing more
        (its channel ended)."""
        try:
            while held.began is None and readable(held.channel):
                message = held.channel.recv()
                if isinstance(message, Began):
                    held.began = message.at
        except (EOFError, OSError):
            return True
        return False

    def unready_channels(self) -> list[Channel]:
        """The channels of the spares that have not said they wait yet (a loop that wants a ready
        spare waits on them too)."""
        return [spare.channel for spare in self._spares if not spare.ready]

    def _ready_spare(self) -> JobProcess | None:
        """The oldest ready spare, after reading the helper's news and ending dead spares."""
        self.pump()
        for spare in list(self._spares):
            if spare.exited or not self._says_waiting(spare):
                self._spares.remove(spare)
                self.kill(spare)
            elif spare.ready:
                return spare
        return None

    @staticmethod
    def _says_waiting(spare: JobProcess) -> bool:
        """False when the spare died before saying it waits; reads its Waiting message if there."""
        if spare.ready:
            return True
        try:
            if readable(spare.channel):
                spare.channel.recv()  # Waiting(pid)
                spare.ready = True
        except (EOFError, OSError):
            return False
        return True

    # -- ending a job process ----------------------------------------------------------------------

    def kill(self, process: JobProcess, *, politely: bool = False) -> None:
        """Signal the process's whole group: SIGKILL, and it is reaped before the next spare is
        handed out (or by `reap`); politely, SIGTERM first (a timeout's first step).

        A killed process runs no further instruction of its own, so an outcome can be recorded
        at once; whatever it started in its group dies with it.
        """
        if politely:
            kill_group(process.pid, signal.SIGTERM)
            return
        kill_group(process.pid, signal.SIGKILL)
        if not process.exited:
            kill_process(process.pid, signal.SIGKILL)  # in case it had not made its own group yet
        if process not in self._killed:
            self._killed.append(process)

    def reap(self, process: JobProcess, timeout: float = REAP_TIMEOUT) -> None:
        """Wait until the process is gone: the helper says it reaped it, or the kernel shows it
        dead (a stopped helper cannot say so, and its word must not hold up the next job's
        start); then close its channel."""
        deadline = time.monotonic() + timeout
        while not process.exited and time.monotonic() < deadline:
            if process_gone(process.pid):  # (with the helper gone, its job processes die with it)
                break
            wait_readable(self.handles(), min(REAP_LOOK_EVERY, deadline - time.monotonic()))
            self.pump()
        if process.held and process.began is None:  # what it said before it was gone
            self._read_began(process)
        process.channel.close()
        self._living.pop(process.pid, None)
        if process in self._killed:
            self._killed.remove(process)

    # -- the helper's life -------------------------------------------------------------------------

    def _restart_helper(self) -> None:
        self._kill_all()
        self.link.restart()

    def _kill_all(self) -> None:
        # Held processes first: one starts by itself once the job before it has ended.
        for process in sorted(self._living.values(), key=lambda process: not process.held):
            self.kill(process)
            process.channel.close()
        self._living.clear()
        self._killed.clear()
        self._spares, self._forks_pending = [], 0

    def close(self) -> None:
        """Kill every job process group, then stop the helper."""
        self._kill_all()
        self.link.close()
