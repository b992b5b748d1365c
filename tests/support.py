"""Helpers for tests: polling with a deadline, free ports, process handling."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")
REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def wait_until(predicate: Callable[[], T | None], timeout: float = 30.0, interval: float = 0.02, what: str = "") -> T:
    """Poll until predicate returns something truthy; fail the test at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(interval)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def pid_alive(pid: int) -> bool:
    """True while a process with this pid exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(") ", 1)[1][0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def start(args: list[str], env: Mapping[str, str], log_path: Path, cwd: Path | None = None) -> subprocess.Popen[bytes]:
    """Start a program (a console script of this venv) with only the given PQ_* environment."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("PQ_")}
    base.update(env)
    base["PATH"] = f"{BIN}{os.pathsep}{base.get('PATH', '')}"
    base.setdefault("PYTHONUNBUFFERED", "1")
    handle = open(log_path, "ab")  # noqa: SIM115 - the child owns it
    return subprocess.Popen(
        args, env=base, stdout=handle, stderr=subprocess.STDOUT, cwd=cwd or REPO, start_new_session=True
    )


def stop(process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """Stop a started program and its process group, gently first."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout)
