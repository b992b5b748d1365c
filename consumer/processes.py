"""Operating-system helpers for algorithm processes: parent-death signal, group kills, exit words."""

from __future__ import annotations

import contextlib
import ctypes
import os
import select
import signal
import sys
from collections.abc import Sequence
from typing import Protocol, TypeVar

_PR_SET_PDEATHSIG = 1
LONGEST_WAIT = 86400.0  # seconds; poll(2) takes an int of milliseconds: longer waits are unlimited


class HasFileno(Protocol):
    """A connection, socket or anything else with a file descriptor to wait on."""

    def fileno(self) -> int: ...


Handle = TypeVar("Handle", bound="int | HasFileno")


def wait_readable(handles: Sequence[Handle], timeout: float | None) -> list[Handle]:
    """The handles that can be read (or have hung up) within `timeout` seconds (None: no limit).

    What multiprocessing.connection.wait does, as one poll(2) without building a selector per
    call: the consumer looks at its job process and the helper several times per job.
    """
    poller = select.poll()
    by_fd: dict[int, Handle] = {}
    for handle in handles:
        fd = handle if isinstance(handle, int) else handle.fileno()
        by_fd[fd] = handle
        poller.register(fd, select.POLLIN)
    milliseconds = None if timeout is None or timeout > LONGEST_WAIT else max(0.0, timeout) * 1000
    return [by_fd[fd] for fd, _ in poller.poll(milliseconds)]


def readable(handle: int | HasFileno) -> bool:
    """True when a read would not block (data, end of file or an error waits)."""
    return bool(wait_readable([handle], 0))


def die_with_parent(sig: int = signal.SIGKILL) -> bool:
    """Ask the kernel to send `sig` when this process's parent exits (Linux only).

    The signal follows the thread that created the process, so the consumer starts its
    helper from the main thread, which lives as long as the consumer.
    """
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    return int(libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)) == 0


def kill_group(pgid: int, sig: int = signal.SIGKILL) -> bool:
    """Signal a whole process group; False when no process of it is left."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False
    return True


def kill_process(pid: int, sig: int = signal.SIGKILL) -> None:
    """Signal one process, ignoring one that is already gone."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def process_gone(pid: int) -> bool:
    """True when the process has ended: no longer there, or a zombie its parent has not reaped."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            stat = handle.read()
    except (FileNotFoundError, ProcessLookupError):
        return True
    return stat[stat.rindex(")") + 2] == "Z"


def signal_name(signum: int) -> str:
    """SIGSEGV for 11; the number itself for an unknown one."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def describe_exit(wait_status: int) -> str:
    """How a process ended, in words: 'exited with code 3', 'was killed by SIGSEGV (signal 11)'."""
    code = os.waitstatus_to_exitcode(wait_status)
    if code < 0:
        return f"was killed by {signal_name(-code)} (signal {-code})"
    return f"exited with code {code}"
