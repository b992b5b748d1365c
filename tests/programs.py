"""The one way a test starts a real program (pq-consumer, pq-producer, pq-relay, an agent …).

`Programs` (the `programs` fixture) starts each program in a process group of its own, with only
the PQ_* variables the test gives it, its own log, and the test's marker (PQ_TEST_RUN=<id>) in its
environment, which its helper and job processes inherit. After the test every program is stopped,
its log printed (pytest shows it when the test failed), and no process carrying the marker may be
left: whatever the test did, nothing of ours survives it (an orphan fails the test, and is killed).
"""

from __future__ import annotations

import contextlib
import os
import signal
import ssl
import subprocess
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path

import httpx

from tests import warm
from tests.support import BIN, REPO, wait_until

MARKER = "PQ_TEST_RUN"
# PQ_TEST_CLAIM_AHEAD=1 runs the suite's consumers claiming ahead (PQ_CLAIM_AHEAD): what every
# program environment of the tests passes on, and what tests that count processes read.
CLAIM_AHEAD = os.environ.get("PQ_TEST_CLAIM_AHEAD", "0") == "1"
CLAIM_AHEAD_ENV = {"PQ_CLAIM_AHEAD": "1" if CLAIM_AHEAD else "0"}

Process = subprocess.Popen[bytes] | warm.WarmProcess
StartConsumer = Callable[..., Process]  # a fixture that starts pq-consumer with overrides
StartProgram = Callable[..., Process]  # a fixture that starts a program by name with overrides


def start_program(
    command: str | list[str],
    env: Mapping[str, str],
    log_path: Path,
    *args: str,
    netns: str | None = None,
    cwd: Path | None = None,
) -> Process:
    """Start a program with only the given PQ_* environment, its output appended to log_path.

    `command` is a console script of this venv ("pq-consumer"), started warm (tests/warm.py), or
    a whole argument list, started with exec; with `netns` it runs inside that network namespace
    (`ip netns exec` execs it: the pid stays)."""
    argv = [str(BIN / command)] if isinstance(command, str) else list(command)
    base = {k: v for k, v in os.environ.items() if not k.startswith("PQ_")}
    base.update(env)
    base["PATH"] = f"{BIN}{os.pathsep}{base.get('PATH', '')}"
    base.setdefault("PYTHONUNBUFFERED", "1")
    inside = ["ip", "netns", "exec", netns] if netns else []
    log_path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(log_path, "ab")  # noqa: SIM115 - the child owns it
    try:
        if warm.ENABLED and isinstance(command, str) and command in warm.ENTRY_POINTS and not netns:
            process = warm.warm_start(command, [*argv, *args], base, cwd or REPO, handle.fileno())
            _WARM.setdefault(base.get(MARKER, ""), []).append(process)
            return process
        return subprocess.Popen(
            [*inside, *argv, *args],
            env=base,
            stdout=handle,
            stderr=subprocess.STDOUT,
            cwd=cwd or REPO,
            start_new_session=True,
        )
    finally:
        handle.close()


def stop_program(process: Process, timeout: float = 10.0) -> None:
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


def stop_now(process: Process) -> None:
    """Stop a program without waiting for its grace period: a second SIGTERM stops a consumer at once."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGCONT)  # a test that failed while it was stopped
    for _ in range(2):
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(0.5)
    stop_program(process, timeout=5)


def wait_exit(process: Process, timeout: float = 30.0) -> int:
    """Wait for a started program to exit by itself; its exit code."""
    return process.wait(timeout)


def kill_hard(process: Process) -> None:
    """SIGKILL the program's own process alone (not its group): what a crash or the OOM killer does."""
    os.kill(process.pid, signal.SIGKILL)
    process.wait(10)


def wait_healthy(
    url: str,
    process: Process | None = None,
    timeout: float = 90.0,
    verify: ssl.SSLContext | bool = True,
    log_path: Path | None = None,
    path: str = "/healthz",
) -> None:
    """Wait until the program at url answers its health check (path) with 200; the intake's
    /healthz answers so once its database does.

    A program that exits meanwhile fails the test at once, with its log when log_path is given.
    One client asks every time: httpx.get() builds a new one per call, and with it a TLS context
    that loads the CA bundle, about 19 ms of CPU every 50 ms poll beside the starting program."""

    def healthy() -> bool:
        if process is not None and process.poll() is not None:
            log = log_path.read_text(errors="replace") if log_path and log_path.exists() else "(log printed below)"
            raise AssertionError(f"{url} exited with {process.returncode}:\n{log}")
        try:
            return client.get(f"{url}{path}").status_code == 200
        except httpx.HTTPError:
            return False

    with httpx.Client(timeout=2, verify=verify) as client:
        wait_until(healthy, timeout=timeout, interval=0.05, what=f"{url} to answer {path}")


def pid_alive(pid: int) -> bool:
    """True while a process with this pid exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def traced_by(pid: int) -> int:
    """The pid of the process tracing `pid` (0 when none)."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(status.split("TracerPid:", 1)[1].split()[0])


def wait_gone(pid: int, timeout: float = 10.0) -> None:
    """Wait until the process no longer runs (gone, or a zombie)."""
    wait_until(lambda: not pid_alive(pid), timeout=timeout, what=f"process {pid} to be gone")


# The warm programs started under each marker: a forked program's /proc/<pid>/environ is still its
# warm server's (the environment it was given is os.environ's, not the kernel's copy).
_WARM: dict[str, list[warm.WarmProcess]] = {}


def marked_processes(marker: str) -> list[int]:
    """Pids of the live processes whose environment carries this test's marker."""
    needle = f"{MARKER}={marker}".encode()
    found = [process.pid for process in _WARM.get(marker, []) if process.poll() is None and pid_alive(process.pid)]
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (
                needle in (entry / "environ").read_bytes().split(b"\0")
                and pid_alive(int(entry.name))
                and int(entry.name) not in found
            ):
                found.append(int(entry.name))
        except OSError:  # gone meanwhile, or not ours to read
            continue
    return found


def kill_orphans(marker: str) -> list[int]:
    """Wait a little for the marked processes to go; SIGKILL and return those that did not."""
    with contextlib.suppress(AssertionError):
        wait_until(lambda: not marked_processes(marker), timeout=10, what="the test's processes to exit")
    left = marked_processes(marker)
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)
            os.kill(pid, signal.SIGKILL)
    return left


class Programs:
    """The programs one test started, each with the test's marker and a log under `logs`."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.marker = uuid.uuid4().hex
        self.started: list[tuple[Process, Path]] = []

    def start(
        self,
        command: str | list[str],
        *args: str,
        env: Mapping[str, str],
        log: str | Path | None = None,
        netns: str | None = None,
        cwd: Path | None = None,
    ) -> Process:
        """Start a program (see start_program); its log is logs/<log> (or the path log), by default
        logs/<program>-<n>.log with n counting every program the test started."""
        name = command if isinstance(command, str) else Path(command[0]).name
        log_path = self.logs / (log or f"{name}-{len(self.started)}.log")
        process = start_program(command, {**env, MARKER: self.marker}, log_path, *args, netns=netns, cwd=cwd)
        self.started.append((process, log_path))
        return process

    def log(self, name: str) -> str:
        """A log's text so far ("" before the program wrote one)."""
        path = self.logs / name
        return path.read_text(errors="replace") if path.exists() else ""

    def stop_programs(self) -> None:
        """Stop every program now (stop_all then prints their logs and checks for orphans)."""
        for process, _ in self.started:
            stop_now(process)

    def stop_all(self) -> list[int]:
        """Stop every program, print each log, and return the marked processes that outlived them."""
        for process, _ in self.started:
            stop_now(process)
        printed: set[Path] = set()
        for process, log_path in self.started:
            if log_path not in printed:
                printed.add(log_path)
                print(f"--- {log_path.name} (exit {process.returncode}) ---")
                print(log_path.read_text(errors="replace")[-20_000:] if log_path.exists() else "(no log)")
        return kill_orphans(self.marker) if self.started else []


def stop_and_check(programs: Programs) -> None:
    """A test's end: stop its programs, print their logs, fail if a process of the test outlived it."""
    left = programs.stop_all()
    assert not left, f"processes of this test outlived it: {left}"
