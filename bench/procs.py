"""Starting and stopping the programs under test, and polling with a deadline."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

import psutil

T = TypeVar("T")
REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def wait_until(predicate: Callable[[], T], timeout: float = 60.0, interval: float = 0.01, what: str = "") -> T:
    """Poll until predicate returns something truthy; raise TimeoutError at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up after {timeout:.0f}s waiting for {what or predicate}")
        time.sleep(interval)


def start(args: list[str], env: Mapping[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """Start a program of this venv in its own process group with only the given PQ_* variables."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("PQ_")}
    base.update(env)
    base["PATH"] = f"{BIN}{os.pathsep}{base.get('PATH', '')}"
    base["PYTHONUNBUFFERED"] = "1"
    handle = open(log_path, "ab")  # noqa: SIM115 - the child owns it
    return subprocess.Popen(args, env=base, stdout=handle, stderr=subprocess.STDOUT, cwd=REPO, start_new_session=True)


def stop(process: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    """SIGTERM the program's process group, then SIGKILL what is left."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout)


def resident_mib(pid: int, with_children: bool = False) -> float:
    """Resident set size of a process (and, optionally, all its descendants) in MiB."""
    process = psutil.Process(pid)
    members = [process] + (process.children(recursive=True) if with_children else [])
    total = 0
    for member in members:
        with contextlib.suppress(psutil.Error):
            total += member.memory_info().rss
    return total / 2**20
