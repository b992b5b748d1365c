"""supervisord as a child of pq-run: started in a session of its own, its output relayed, stopped
on request, and anything it leaves behind killed.

supervisord runs in its own session, so the terminal's Ctrl-C reaches pq-run only: pq-run decides
what a Ctrl-C means (the first stops every program gracefully, the second stops the running job
at once) and its output pipe stays open whatever happened to the terminal. supervisord gets a
parent-death signal, so it shuts down cleanly even if pq-run is killed.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
from pathlib import Path

import psutil

# supervisord's programs, by the console script each runs.
PROGRAMS = {
    "pq-producer": "producer",
    "pq-consumer": "consumer",
    "pq-dashboard": "ops_dashboard",
    "pq-demo-feeder": "demo_feeder",
    "pq-relay": "relay",
}
PR_SET_PDEATHSIG = 1


def _stop_with_parent() -> None:
    """In the child before exec: SIGTERM it (a clean shutdown) when pq-run dies."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class Supervision:
    """One supervisord run."""

    def __init__(self, config: Path, home: Path, env: dict[str, str]) -> None:
        self.config = config
        self.home = home
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None
        self.seen: dict[int, psutil.Process] = {}  # every program process seen, to check none is left

    def start(self, supervisord: str) -> int:
        """Start supervisord in the foreground (-n); the fd its output comes on."""
        self.process = subprocess.Popen(
            [supervisord, "-n", "-c", str(self.config)],
            cwd=self.home,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_stop_with_parent,  # safe: pq-run has no threads
        )
        assert self.process.stdout is not None
        return self.process.stdout.fileno()

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def programs(self) -> dict[str, list[psutil.Process]]:
        """supervisord's programs now, by name (remembered for leftovers())."""
        found: dict[str, list[psutil.Process]] = {}
        with contextlib.suppress(psutil.Error):
            for child in psutil.Process(self.pid).children():
                with contextlib.suppress(psutil.Error):
                    name = _program_of(child.cmdline())
                    self.seen.setdefault(child.pid, child)
                    found.setdefault(name, []).append(child)
        return found

    def stop(self) -> None:
        """Ask supervisord to stop every program gracefully (each its stopsignal and stopwaitsecs)."""
        self._signal(signal.SIGTERM)

    def stop_job_now(self) -> list[int]:
        """Tell the consumer a second time: it kills its running job at once and gives it back."""
        consumers = self.programs().get("consumer", [])
        for consumer in consumers:
            with contextlib.suppress(psutil.Error):
                consumer.send_signal(signal.SIGINT)
        return [consumer.pid for consumer in consumers]

    def kill_everything(self) -> None:
        """No more waiting: SIGKILL every program's process group, then supervisord."""
        self.programs()
        for process in self.seen.values():
            _kill_group(process)
        self._signal(signal.SIGKILL)

    def leftovers(self) -> list[psutil.Process]:
        """Program processes still alive after supervisord ended, killed (with their groups)."""
        left = [process for process in self.seen.values() if _alive(process)]
        for process in left:
            _kill_group(process)
        return left

    def _signal(self, signum: int) -> None:
        if self.running():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signum)


def _program_of(cmdline: list[str]) -> str:
    for part in cmdline[:3]:
        name = PROGRAMS.get(Path(part).name)
        if name:
            return name
    return Path(cmdline[0]).name if cmdline else "?"


def _alive(process: psutil.Process) -> bool:
    with contextlib.suppress(psutil.Error):
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    return False


def _kill_group(process: psutil.Process) -> None:
    """SIGKILL the process's group (supervisord starts each program as a group leader)."""
    with contextlib.suppress(psutil.Error, ProcessLookupError, PermissionError):
        if process.is_running():
            os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(psutil.Error):
        process.kill()
