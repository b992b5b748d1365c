"""Operating-system helpers for algorithm processes: parent-death signal, group kills, exit words."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys

_PR_SET_PDEATHSIG = 1


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
