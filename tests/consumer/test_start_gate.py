"""The start gate, with a real helper and real job processes: a held job starts only once the job
before it on the seat has ended, without a word from the consumer or, once its gate is armed,
from the helper; never past its own kill deadline; a stopped or killed helper never lets it
start late, and a stopped helper does not hold up a start that is due.

This test process plays the consumer: it reads nothing from the helper while the hand-off
happens, as a consumer that is stopped or busy would not.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from consumer.channel import Channel
from consumer.helper_link import HelperLink
from consumer.messages import Began, Deadline, Exited, Fork, Forked, FromHelper, Overdue, Payload, StartAfter, Waiting
from consumer.processes import readable
from pqueue import load_settings
from tests.consumer.algos import read_log
from tests.faults.ledger import overlaps, read_runs, runs_of
from tests.programs import pid_alive, traced_by
from tests.support import wait_until

pytestmark = pytest.mark.timeout(60)

FAR = 60.0  # a kill deadline no test reaches


class Seat:
    """The consumer's end, by hand: fork job processes, send payloads and deadlines, keep what
    the helper says in order."""

    def __init__(self, link: HelperLink) -> None:
        self.link = link
        self.heard: list[FromHelper] = []
        self.sockets: dict[int, Channel] = {}
        link.on_message = self._heard

    def _heard(self, message: FromHelper, passed: Channel | None) -> None:
        self.heard.append(message)
        if passed is not None:
            assert isinstance(message, Forked)
            self.sockets[message.pid] = passed

    def fork(self) -> int:
        """A ready job process's pid."""
        assert self.link.send(Fork())
        known = set(self.sockets)

        def forked() -> int | None:
            self.link.pump()
            return next((pid for pid in self.sockets if pid not in known), None)

        pid = wait_until(forked, what="a forked job process")
        waiting = self.sockets[pid].recv()
        assert waiting == Waiting(pid)
        return pid

    def give(self, pid: int, payload: dict[str, Any], *, held: bool = False, deadline_in: float = FAR) -> None:
        """The deadline first, then the payload (what the lease keeper and the run do)."""
        assert self.link.send(Deadline(pid, time.monotonic() + deadline_in))
        self.sockets[pid].send(Payload(1, payload, held))

    def began(self, pid: int) -> float | None:
        """When the job process said its held job began (None if it has not said so)."""
        channel = self.sockets[pid]
        try:
            while readable(channel):
                message = channel.recv()
                if isinstance(message, Began):
                    assert message.pid == pid
                    return message.at
        except (EOFError, OSError):
            pass
        return None

    def heard_of(self, kind: type, pid: int) -> int | None:
        """Where in the helper's messages the first `kind` about `pid` is (None if not said yet)."""
        self.link.pump()
        said = (i for i, m in enumerate(self.heard) if isinstance(m, kind) and getattr(m, "pid", None) == pid)
        return next(said, None)


@pytest.fixture
def seat() -> Iterator[Seat]:
    link = HelperLink(load_settings(algorithm="tests.consumer.algos:act"))
    link.start()
    link.wait_ready()
    try:
        yield Seat(link)
    finally:
        link.close()


def sleeping(log: Path, seconds: float) -> dict[str, Any]:
    return {"do": "sleep", "seconds": seconds, "log": str(log)}


def starting(log: Path) -> dict[str, Any]:
    return {"do": "ok", "log": str(log)}


class ArmedPair(NamedTuple):
    running: int
    held: int
    helper: int  # the helper's pid, for the tests that stop it
    first: Path  # the running job's log
    second: Path  # the held job's log


def armed_pair(seat: Seat, tmp_path: Path, *, first_seconds: float, deadline_in: float) -> ArmedPair:
    """A job of `first_seconds` running, and one held behind it with its kill deadline
    `deadline_in` from now, its gate being armed (StartAfter sent)."""
    running, held = seat.fork(), seat.fork()
    first, second = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    helper = seat.link._process
    assert helper is not None
    seat.give(running, sleeping(first, first_seconds))
    seat.give(held, starting(second), held=True, deadline_in=deadline_in)
    assert seat.link.send(StartAfter(held, running))
    return ArmedPair(running, held, helper.pid, first, second)


def test_held_job__starts_after_the_running_one_ended_without_the_consumer(seat: Seat, tmp_path: Path) -> None:
    running, held, _helper, first, second = armed_pair(seat, tmp_path, first_seconds=0.5, deadline_in=FAR)

    # Nothing is read from the helper meanwhile: the hand-off needs no word from the consumer.
    wait_until(lambda: read_log(second), what="the held job's start")
    ended = max(event["t"] for event in read_log(first))
    assert read_log(second)[0]["t"] >= ended, "the held job started beside the one before it"
    began = seat.began(held)
    assert began is not None and began <= time.monotonic()

    wait_until(lambda: seat.heard_of(Exited, running) is not None and seat.heard_of(Exited, held) is not None)
    assert not pid_alive(running)


def test_held_job__kills_what_the_job_before_left_in_its_group_before_it_starts(seat: Seat, tmp_path: Path) -> None:
    """The job before starts a child in its group and ends without waiting for it: the child is
    killed before the held job starts, by the held job's process itself when the helper (which
    kills it after the reap) is stopped."""
    running, held = seat.fork(), seat.fork()
    second = tmp_path / "second.jsonl"
    child_pid_file = tmp_path / "child.pid"
    helper = seat.link._process
    assert helper is not None
    seat.give(running, {"do": "orphan", "pid_file": str(child_pid_file), "seconds": 0.5})
    seat.give(held, {"do": "check_gone", "pid_file": str(child_pid_file), "log": str(second)}, held=True)
    assert seat.link.send(StartAfter(held, running))
    time.sleep(0.2)  # the gate armed
    os.kill(helper.pid, signal.SIGSTOP)
    try:
        wait_until(lambda: read_log(second), timeout=5, what="the held job's start")
    finally:
        os.kill(helper.pid, signal.SIGCONT)
    assert read_log(second)[0]["child_alive"] is False


def ledger_run(ledger: Path, tag: str, seconds: float, **extra: Any) -> dict[str, Any]:
    return {"do": "ledger", "ledger": str(ledger), "tag": tag, "seconds": seconds, **extra}


@pytest.mark.parametrize("leave", ["child", "thread"])
def test_held_job__starts_on_the_word_of_the_one_before_only_once_what_it_left_is_killed(
    seat: Seat, tmp_path: Path, leave: str
) -> None:
    """The job before returns while a writer it started (a process in its group, or a non-daemon
    thread) still appends to the ledger; it says done after its answer. The helper kills its
    whole group before it opens the held job's gate: the held run starts after the writer's
    last line. Nothing is read from the helper meanwhile, nothing is killed by this process.
    The job before fills 300 MB: its exit (what the pidfd and the reap wait for) takes tens of
    milliseconds, long after the held job's start, so the kill before the go is the only thing
    that stops the writer in time."""
    running, held = seat.fork(), seat.fork()
    ledger = tmp_path / "ledger.jsonl"
    seat.give(running, ledger_run(ledger, "running", 0.3, leave=leave, ballast_mb=300))
    seat.give(held, ledger_run(ledger, "held", 0.05), held=True)
    assert seat.link.send(StartAfter(held, running))
    wait_until(lambda: runs_of(read_runs(ledger), "held"), what="the held job's start")
    time.sleep(0.1)
    runs = read_runs(ledger)
    (n,), (left,), (n1,) = runs_of(runs, "running"), runs_of(runs, "running:left"), runs_of(runs, "held")
    assert n.ended and left.last > n.last, "nothing was left running after the job before ended"
    assert n1.start >= left.last, overlaps(runs)
    assert seat.began(held) is not None


def test_held_job__a_forged_done_kills_the_forger_first_and_opens_only_its_own_follower(
    seat: Seat, tmp_path: Path
) -> None:
    """A running algorithm writes DONE on its own gate mid-run, naming another running job as
    the one before: the helper ends the forger's group, and only then opens the gate of the job
    held behind the forger; the job held behind the other one still waits for that one's end."""
    forger, other, behind_forger, behind_other = seat.fork(), seat.fork(), seat.fork(), seat.fork()
    ledger = tmp_path / "ledger.jsonl"
    seat.give(other, ledger_run(ledger, "other", 1.0))
    seat.give(behind_other, ledger_run(ledger, "behind_other", 0.05), held=True)
    assert seat.link.send(StartAfter(behind_other, other))
    seat.give(behind_forger, ledger_run(ledger, "behind_forger", 0.05), held=True)
    assert seat.link.send(StartAfter(behind_forger, forger))
    time.sleep(0.1)  # both gates armed
    seat.give(forger, {**ledger_run(ledger, "forger", 5), "do": "forge_done", "forge_after": 0.2, "pid": other})
    wait_until(lambda: runs_of(read_runs(ledger), "behind_forger"), what="the forger's follower's start")
    runs = read_runs(ledger)
    (forged,), (started,) = runs_of(runs, "forger"), runs_of(runs, "behind_forger")
    assert not forged.ended and started.start >= forged.last, overlaps(runs)
    assert runs_of(runs, "behind_other") == [], "a forged word opened another job's gate"
    wait_until(lambda: runs_of(read_runs(ledger), "behind_other"), what="the other's follower's start")
    runs = read_runs(ledger)
    (ran,), (after_it,) = runs_of(runs, "other"), runs_of(runs, "behind_other")
    assert ran.ended and after_it.start >= ran.last


def test_held_job__the_one_before_killed_mid_run_starts_it_after_its_end(seat: Seat, tmp_path: Path) -> None:
    """The job before is killed (SIGKILL) mid-run and never says done: the held job starts once
    it has ended (its pidfd), never beside it."""
    running, held = seat.fork(), seat.fork()
    ledger = tmp_path / "ledger.jsonl"
    seat.give(running, ledger_run(ledger, "running", 30))
    seat.give(held, ledger_run(ledger, "held", 0.05), held=True)
    assert seat.link.send(StartAfter(held, running))
    wait_until(lambda: runs_of(read_runs(ledger), "running"), what="the first job's start")
    time.sleep(0.1)
    os.kill(running, signal.SIGKILL)
    wait_until(lambda: runs_of(read_runs(ledger), "held"), what="the held job's start")
    runs = read_runs(ledger)
    (n,), (n1,) = runs_of(runs, "running"), runs_of(runs, "held")
    assert not n.ended and n1.start >= n.last, overlaps(runs)
    assert seat.began(held) is not None


def test_held_job__starts_at_once_when_the_one_before_is_already_reaped(seat: Seat, tmp_path: Path) -> None:
    running, held = seat.fork(), seat.fork()
    second = tmp_path / "second.jsonl"
    seat.give(running, starting(tmp_path / "first.jsonl"))
    wait_until(lambda: seat.heard_of(Exited, running) is not None)
    seat.give(held, starting(second), held=True)
    assert seat.link.send(StartAfter(held, running))
    wait_until(lambda: read_log(second), what="the held job's start")
    assert seat.began(held) is not None


def test_held_job__never_starts_past_its_kill_deadline(seat: Seat, tmp_path: Path) -> None:
    running, held, _helper, _first, second = armed_pair(seat, tmp_path, first_seconds=1.0, deadline_in=0.3)
    wait_until(lambda: seat.heard_of(Exited, running) is not None and seat.heard_of(Exited, held) is not None)
    assert seat.heard_of(Overdue, held) is not None
    assert seat.began(held) is None
    assert read_log(second) == []


def test_held_job__a_helper_stopped_past_its_deadline_never_starts_it_late(seat: Seat, tmp_path: Path) -> None:
    """SIGSTOP the helper while the job before runs; the held job's deadline passes, then the
    job before ends: the held one does not start by itself; the helper resumes, reaps the first
    job and closes the held one's gate unopened."""
    _running, held, helper, _first, second = armed_pair(seat, tmp_path, first_seconds=0.8, deadline_in=0.4)
    time.sleep(0.1)  # the gate armed
    os.kill(helper, signal.SIGSTOP)
    try:
        time.sleep(1.2)
        assert read_log(second) == []
    finally:
        os.kill(helper, signal.SIGCONT)
    wait_until(lambda: seat.heard_of(Exited, held) is not None, what="the held job process's end")
    assert seat.began(held) is None
    assert read_log(second) == []


def test_held_job__armed__starts_on_its_own_while_the_helper_is_stopped(seat: Seat, tmp_path: Path) -> None:
    """The held job learns of the first one's end from the kernel (a pidfd of it on its gate):
    with the helper stopped, it starts when the first ends, before its deadline, never beside it."""
    _running, held, helper, first, second = armed_pair(seat, tmp_path, first_seconds=0.6, deadline_in=10)
    time.sleep(0.2)  # the gate armed
    os.kill(helper, signal.SIGSTOP)
    try:
        wait_until(lambda: read_log(second), timeout=5, what="the held job's start, the helper stopped")
        ended = max(event["t"] for event in read_log(first))
        assert read_log(second)[0]["t"] >= ended, "the held job started beside the one before it"
        assert seat.began(held) is not None
    finally:
        os.kill(helper, signal.SIGCONT)


def test_held_job__armed__a_later_deadline_reaches_the_gate(seat: Seat, tmp_path: Path) -> None:
    """The deadline the gate was armed with passes while the first job runs, but a renewal moved
    it: the held job, told so on its gate, starts by itself with the helper stopped."""
    _running, held, helper, _first, second = armed_pair(seat, tmp_path, first_seconds=0.8, deadline_in=0.4)
    assert seat.link.send(Deadline(held, time.monotonic() + FAR))
    time.sleep(0.2)  # both read by the helper
    os.kill(helper, signal.SIGSTOP)
    try:
        wait_until(lambda: read_log(second), timeout=5, what="the held job's start, the helper stopped")
    finally:
        os.kill(helper, signal.SIGCONT)


def test_held_job__dies_unstarted_with_a_killed_helper(seat: Seat, tmp_path: Path) -> None:
    running, held, helper, first, second = armed_pair(seat, tmp_path, first_seconds=30, deadline_in=FAR)
    wait_until(lambda: read_log(first), what="the first job's start")
    os.kill(helper, signal.SIGKILL)
    wait_until(lambda: not pid_alive(running) and not pid_alive(held), what="both job processes gone")
    assert read_log(second) == []


def test_held_job__armed__never_begins_once_the_helper_stops_for_a_gone_consumer(seat: Seat, tmp_path: Path) -> None:
    """The helper's parent-death signal (SIGTERM) comes while the job before runs, and the held
    job's channel to the consumer stays open (a killed consumer's threads exit one by one, its
    files closed with the last): the helper kills both job processes, and the held one, armed
    with a pidfd of the one before, never begins.

    strace makes every kill the helper sends return 0.3 s late, as when the helper loses the
    CPU between two kills: whichever job process dies first, the held one has all the time it
    needs to see the one before end (it began, once, in a CI run)."""
    assert shutil.which("strace"), "this test needs strace (apt-get install strace)"
    running, held, helper, first, second = armed_pair(seat, tmp_path, first_seconds=30, deadline_in=FAR)
    wait_until(lambda: read_log(first), what="the first job's start")
    time.sleep(0.1)  # the gate armed
    tracer = subprocess.Popen(
        [
            "strace",
            "-qq",
            "-o",
            os.devnull,
            "-e",
            "trace=kill",
            "-e",
            "inject=kill:delay_exit=300000",
            "-p",
            str(helper),
        ]
    )
    try:
        wait_until(lambda: traced_by(helper) == tracer.pid, what="strace attached to the helper")
        os.kill(helper, signal.SIGTERM)
        wait_until(lambda: not pid_alive(running) and not pid_alive(held), what="both job processes gone")
    finally:
        tracer.terminate()
        tracer.wait()
    assert seat.began(held) is None
    assert read_log(second) == []


def test_start_after__for_a_job_process_without_a_deadline_never_opens(seat: Seat, tmp_path: Path) -> None:
    running, held = seat.fork(), seat.fork()
    second = tmp_path / "second.jsonl"
    seat.give(running, starting(tmp_path / "first.jsonl"))
    seat.sockets[held].send(Payload(2, starting(second), True))  # no Deadline for it
    assert seat.link.send(StartAfter(held, running))
    wait_until(lambda: seat.heard_of(Exited, held) is not None, what="the held job process's end")
    assert seat.began(held) is None
    assert read_log(second) == []
