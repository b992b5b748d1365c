"""The warm helper: a process that imported the algorithm once and forks a job process on request.

The consumer starts it as a fresh interpreter (`python -m consumer.helper`, the equivalent of
multiprocessing's `spawn`: no database connections, no threads inherited from the consumer).
It is a small fork server of our own rather than multiprocessing's: it sits in a session of its
own, so a signal sent to the consumer's process group (Supervisor's stopasgroup, Ctrl-C) cannot
kill it, and the running job with it, before the grace period; and it dies with the consumer
(parent-death signal), which kills its job processes in turn. Forking a process that has the
algorithm imported takes milliseconds, where starting an interpreter and importing pandas takes
seconds. It imports nothing heavy itself: pqueue only when the algorithm asks for the settings.

It is also the job processes' watchdog: when the consumer is gone (its lifeline pipe closes, its
parent-death signal arrives, or the command channel breaks) it kills the process group of every
job process it forked and has not reaped, then exits; and when it reaps a job process it kills
what is left of that process's group. One process for all jobs, not a watchdog forked per job;
a process, not a thread of the consumer, so an algorithm holding the interpreter lock cannot
delay it, and it runs no algorithm code itself.

It enforces each running job's kill deadline too. The consumer tells it the deadline before the
payload goes out and again after every renewal of the lease (the lease's end minus its margin,
or the job timeout's hard kill, whichever comes first; on the monotonic clock, which every
process of the machine shares); a deadline only moves forward. When one passes, the job's whole
process group is killed, whether the consumer is running, stopped (SIGSTOP, Ctrl-Z), hung in a
system call or busy: the helper sits in a session of its own, so a stop of the consumer's
process group does not reach it, and when the whole tree was stopped and resumed it reads every
command that waited and kills an overdue job before anything else.

It opens the seat for a held job (the seat's hand-off, docs/architecture.md): every job process
is forked with a start gate, a socket only the helper writes to. A job process given a held
payload waits on it. StartAfter(next, after) arms next's gate: the helper opens a pidfd of
`after` (its own child, not reaped: the pid cannot name another process) and passes it with
next's kill deadline, and every later deadline of next after it; next then starts by itself the
moment the kernel says `after` has ended, with no wake-up of the helper nor a word from the
consumer on the way, and never beside the one before it. That is the fallback. The usual start
is `after`'s own word: a job process says DONE on its gate once its algorithm has returned and
its Answer is sent. The ARM passes next the helper's end of `after`'s gate with the pidfd, and
the helper stops listening to that gate: next hears the DONE itself, kills `after`'s whole group
(SIGKILL: the process, its threads and whatever its algorithm left in the group) and starts,
one wake-up (its own) without waiting for the kernel to tear `after` down (a millisecond or
more for a process of the helper's size). For a job whose follower is not armed with its gate
(none yet, or the follower gone) the helper listens: woken by a DONE, it kills the group, and
only then opens the follower's gate (go), at once for a StartAfter that comes later. The helper
opens the gate itself too once it has reaped `after` and killed its group, for a gate it could
not arm or a job process that woke past the deadline it knew. A gate is opened only before its
job's kill deadline; past it, the gate is closed unopened and the held job never runs.

What a job process writes on its gate is trusted for nothing but its own end: only the helper
and the job armed behind it read it, both know whose gate it is, so a DONE (forged by an
algorithm, or said early) ends that process's group and starts its own follower, never another
job, and the kill comes first. Anything else on a gate, or its end of file, ends the listening
to it (the pidfd still starts the follower).

The messages both ways are declared in consumer/messages.py: Start once, then Fork, Deadline and
StartAfter from the consumer; Ready or Broken once, then Forked (with the job process's socket),
ForkFailed, Overdue and Exited from the helper. The start gate's fixed-size messages (GO, ARM,
MOVE from the helper; DONE from the job process) are in consumer/job_process.py.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import signal
import socket
import sys
import time
import traceback
from typing import Any

from consumer.channel import Channel
from consumer.job_process import ARM, DONE, GATE, GO, MOVE, gate_message, run_job_process
from consumer.loading import Algorithm, AlgorithmUnavailable, load_algorithm, wants_settings
from consumer.messages import (
    Broken,
    Deadline,
    Exited,
    Fork,
    Forked,
    ForkFailed,
    Overdue,
    Ready,
    Start,
    StartAfter,
    ToHelper,
)
from consumer.processes import die_with_parent, kill_group, kill_process, readable, wait_readable


def main(argv: list[str] | None = None) -> int:
    """Entry point of the helper process (started by the consumer, never by hand)."""
    parser = argparse.ArgumentParser(prog="python -m consumer.helper")
    parser.add_argument("--commands", type=int, required=True, help="socket to the consumer")
    parser.add_argument("--lifeline", type=int, required=True, help="pipe that closes when the consumer exits")
    parser.add_argument("--consumer-pid", type=int, required=True)
    args = parser.parse_args(argv)
    # SIGTERM, not SIGKILL: the helper must live long enough to kill its job process groups.
    die_with_parent(signal.SIGTERM)  # the session of its own was made before exec (start_new_session)
    if os.getppid() != args.consumer_pid:
        return 0
    commands = Channel.from_fd(args.commands)
    try:
        start: Start = commands.recv()
        try:
            function = load_algorithm(start.algorithm)
            settings = _settings_for(function, start.settings_json)
        except AlgorithmUnavailable as exc:
            commands.send(Broken(str(exc)))
            return 1
        commands.send(Ready())
    except (EOFError, OSError):
        return 0
    Helper(commands, args.lifeline, function, settings, args.consumer_pid).loop()
    return 0


def _settings_for(function: Algorithm, settings_json: str) -> Any:
    """The consumer's Settings, for an algorithm that takes them (imports pqueue only then)."""
    if not wants_settings(function):
        return None
    from pqueue import Settings

    return Settings.model_validate_json(settings_json)


class Helper:
    """Forks job processes and reports how they ended."""

    def __init__(self, commands: Channel, lifeline: int, function: Algorithm, settings: Any, consumer_pid: int) -> None:
        self.commands = commands
        self.lifeline = lifeline
        self.function = function
        self.settings = settings
        self.consumer_pid = consumer_pid
        self.pid = os.getpid()
        self.jobs: set[int] = set()  # job processes forked and not reaped: their pids name their groups
        self.deadlines: dict[int, float] = {}  # job process pid -> monotonic moment it must be dead by
        # job process pid -> the helper's end of its start gate: until reaped, closed unopened, or
        # its job said DONE (a gate opened stays, to hear the DONE of the job it started)
        self.gates: dict[int, socket.socket] = {}
        self.opened: set[int] = set()  # job processes whose gate said go
        self.armed: set[int] = set()  # held job processes whose gate has a pidfd of the one before
        self.after: dict[int, int] = {}  # held job process pid -> the job process it starts after
        # job process pid -> the held job process that listens to its gate in the helper's stead
        # (armed with it): it hears the DONE itself, one wake-up instead of the helper's and its own
        self.heard_by: dict[int, int] = {}
        self.done: set[int] = set()  # job processes that said DONE and whose group is killed, not yet reaped
        self.stopping = False
        # SIGCHLD and SIGTERM (the consumer's death, or a stop) wake the loop through this pipe.
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(self.wake_w, False)
        signal.set_wakeup_fd(self.wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.signal(signal.SIGTERM, self._stop)
        self.watched: list[Channel | int] = [self.commands, self.lifeline, self.wake_r]

    def _stop(self, _signum: int, _frame: Any) -> None:
        self.stopping = True

    def loop(self) -> None:
        """Serve fork requests until the consumer closes the command channel or goes away; then
        kill every job process group that is left."""
        try:
            self._serve()
        except (EOFError, OSError):  # the consumer closed the channel (or is gone): nothing to say
            pass
        finally:
            self._kill_jobs()

    def _serve(self) -> None:
        while not self.stopping and os.getppid() == self.consumer_pid:
            gates = {gate.fileno(): pid for pid, gate in self.gates.items() if pid not in self.heard_by}
            ready = wait_readable([*self.watched, *gates], self._until_next_deadline())
            if self.lifeline in ready:  # before any reap: no gate opens once the consumer is gone
                return
            if self.wake_r in ready:
                with contextlib.suppress(BlockingIOError):
                    os.read(self.wake_r, 4096)
            self._reap()
            # Every waiting command first: a renewal sent before a stop must count before the
            # deadlines are judged, or a job whose lease was renewed would be killed. Forks wait
            # until the job processes' words are heard: one takes milliseconds, and a DONE read
            # after it would hold the held job back as long.
            forks = 0
            while readable(self.commands):
                request = self.commands.recv()
                if isinstance(request, Fork):
                    forks += 1
                else:
                    self._handle(request)
            for fd in ready:  # what the job processes said on their gates (DONE)
                if isinstance(fd, int) and fd in gates:
                    self._hear_gate(gates[fd])
            self._kill_overdue()
            for _ in range(forks):
                self._fork()

    def _handle(self, request: ToHelper) -> None:
        match request:
            case Fork():  # (the loop defers forks; here for completeness)
                self._fork()
            case Deadline(pid, when):
                if pid in self.jobs:  # a job process already reaped needs no deadline
                    self.deadlines[pid] = max(when, self.deadlines.get(pid, when))
                    if pid in self.armed:  # after the helper's own: the job process never knows a later one
                        self._tell_gate(pid, gate_message(MOVE, self.deadlines[pid]))
            case StartAfter(pid, after):
                if pid not in self.jobs:
                    return
                if after in self.jobs and after not in self.done:
                    self.after[pid] = after
                    self._arm(pid, after)
                else:  # the job before it said DONE and its group is killed, or it is reaped: the seat is free now
                    self._open_gate(pid)

    def _hear_gate(self, pid: int) -> None:
        """Read what the job process `pid` said on its gate: DONE ends its group and opens its
        follower's gate; anything else (or end of file) ends the helper's listening."""
        gate = self.gates.get(pid)
        if gate is None:
            return
        said = b""
        for _ in range(2):
            try:
                said = gate.recv(GATE.size + 1)  # one message (SOCK_SEQPACKET): a longer one is not DONE
            except BlockingIOError:
                return
            except ConnectionResetError:
                # The job process ended with a message of ours unread (a go it never needed): the
                # kernel says so once, before what it said is read.
                continue
            except OSError:
                pass
            break
        self._close_gate(pid)  # one word is all a job process says: its gate is not read again
        if len(said) == GATE.size and said[:1] == DONE and pid in self.jobs:
            self._finished(pid)

    def _finished(self, pid: int) -> None:
        """The job process `pid` said DONE (after its answer): kill its whole group, then open the
        gate of the job held behind it (the seat is free once nothing of `pid` can run).

        A SIGKILL to the group is pending in every member when kill(2) returns: none of them runs
        an instruction of its own again, whatever CPU it is on. The kernel's teardown of their
        memory (what the pidfd waits for) is no longer on the held job's way."""
        kill_group(pid)
        kill_process(pid)  # `pid` is not reaped: the pid is still its own
        self.done.add(pid)
        self.after.pop(pid, None)
        self.armed.discard(pid)
        for held in [held for held, before in self.after.items() if before == pid]:
            self._open_gate(held)

    def _arm(self, pid: int, after: int) -> None:
        """Pass the held job process a pidfd of the one before it and its kill deadline: it starts
        by itself once that one has ended. Without a deadline, or a pidfd (an older kernel), the
        gate waits for the helper's go after the reap."""
        if pid not in self.deadlines or pid not in self.gates:
            return
        try:
            pidfd = os.pidfd_open(after)  # `after` is a child not yet reaped: the pid is still its own
        except (AttributeError, OSError):
            return
        fds = [pidfd]
        word = self.gates.get(after)
        if word is not None:
            fds.append(word.fileno())
        try:
            socket.send_fds(self.gates[pid], [gate_message(ARM, self.deadlines[pid], after)], fds)
            self.armed.add(pid)
            if word is not None:
                self.heard_by[after] = pid
        except OSError:  # the held process is gone: it never started
            pass
        finally:
            os.close(pidfd)

    def _tell_gate(self, pid: int, message: bytes) -> None:
        gate = self.gates.get(pid)
        if gate is not None:
            with contextlib.suppress(OSError):
                gate.send(message)

    def _stop_hearing_for(self, held: int) -> None:
        """The held job process no longer listens to the gate of the job before it (it started, or
        is gone, or its gate closed): the helper listens to that gate again."""
        for before in [before for before, by in self.heard_by.items() if by == held]:
            del self.heard_by[before]

    def _close_gate(self, pid: int) -> None:
        self.opened.discard(pid)
        gate = self.gates.pop(pid, None)
        if gate is not None:
            gate.close()

    def _open_gate(self, pid: int) -> None:
        """Let the held job of `pid` start, if its kill deadline is still ahead; else close its
        gate unopened (it exits without running, and the consumer gives its job back). An armed
        job process has mostly started by itself already: the go is then never read."""
        self.after.pop(pid, None)
        self.armed.discard(pid)
        self._stop_hearing_for(pid)
        gate = self.gates.get(pid)
        if gate is None or pid in self.opened:
            return
        try:
            if time.monotonic() < self.deadlines.get(pid, -math.inf):
                gate.send(gate_message(GO))
                self.opened.add(pid)  # kept open: its job says DONE on it at the end
                return
        except OSError:  # the held process is gone already: it never started
            pass
        self._close_gate(pid)

    def _until_next_deadline(self) -> float | None:
        if not self.deadlines:
            return None
        return max(0.0, min(self.deadlines.values()) - time.monotonic())

    def _kill_overdue(self) -> None:
        """SIGKILL the group of every job process past its deadline, and say so to the consumer."""
        now = time.monotonic()
        for pid, when in sorted(self.deadlines.items(), key=lambda item: item[0] not in self.after):  # held jobs first
            if now >= when:
                del self.deadlines[pid]
                kill_group(pid)
                kill_process(pid)
                with contextlib.suppress(OSError):  # a stopped consumer reads it when it resumes
                    self.commands.send(Overdue(pid, now - when))

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self.jobs.discard(pid)
            self.deadlines.pop(pid, None)
            self.after.pop(pid, None)
            self.armed.discard(pid)
            self.done.discard(pid)
            self.heard_by.pop(pid, None)
            self._stop_hearing_for(pid)
            self._close_gate(pid)
            kill_group(pid)  # whatever the job started dies with it (the consumer kills it too)
            # The seat is free only now (the process reaped, its group killed): open the gate of
            # the job held behind it before saying anything.
            following = [held for held, before in self.after.items() if before == pid]
            for held in following:
                self._open_gate(held)
            self.commands.send(Exited(pid, status))

    def _kill_jobs(self) -> None:
        """SIGKILL the group of every job process not yet reaped (its pid cannot have been reused).

        Every gate closes first. An armed held job starts by itself once the job before it has
        ended, and it reads its gate's end of file before it looks at that end: so no kill below,
        in whatever order the exits land, lets it begin. (Killing held jobs first was not enough:
        a running job's unused gate looked the same as a held job's, and the helper may lose the
        CPU between two kills while the held job, on the other core, sees the running one end.)"""
        for gate in self.gates.values():
            gate.close()
        self.gates.clear()
        self.opened.clear()
        for pid in sorted(self.jobs, key=lambda pid: pid not in self.after):  # held jobs first all the same
            kill_group(pid)
            kill_process(pid)  # in case it had not made its own group yet
        self.jobs.clear()

    def _fork(self) -> None:
        for stream in (sys.stdout, sys.stderr):
            stream.flush()  # or the job process would print the helper's buffered output again
        ours, theirs = socket.socketpair()
        gate_w, gate_r = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            pid = os.fork()
        except OSError as exc:
            for end in (gate_r, gate_w):
                end.close()
            ours.close()
            theirs.close()
            self.commands.send(ForkFailed(f"{type(exc).__name__}: {exc}"))
            return
        if pid == 0:
            gate_w.close()
            self._become_job_process(ours, theirs, gate_r)
        self.jobs.add(pid)
        gate_r.close()
        gate_w.setblocking(False)  # a few bytes at most wait in it; the helper never blocks on one
        self.gates[pid] = gate_w
        theirs.close()
        self.commands.send(Forked(pid))
        self.commands.send_fd(ours.fileno())
        ours.close()

    def _become_job_process(self, ours: socket.socket, theirs: socket.socket, gate: socket.socket) -> None:
        """In the forked process: drop the helper's plumbing and run the job; never return."""
        code = 70
        try:
            ours.close()
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            os.close(self.wake_r)
            os.close(self.wake_w)
            os.close(self.lifeline)
            for other_gate in self.gates.values():  # only the helper may open a gate
                other_gate.close()
            self.commands.close()
            run_job_process(theirs, self.function, self.settings, self.pid, gate)
            code = 0
        except BaseException:  # noqa: BLE001 - whatever happens, never return into the helper's loop
            traceback.print_exc()
        finally:
            os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
