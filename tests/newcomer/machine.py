"""A newcomer's machine: a PQ_HOME of its own for each `make run`, free ports, and nothing left
running afterwards."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import psutil

import pqueue
from pqueue import PersistentQ
from tests.newcomer.terminal import Terminal
from tests.support import BIN, REPO, free_port

# The job the tour watches: long enough to press Ctrl-C while it runs.
SLEEP = "consumer.algorithms.sleep:run"


@dataclass
class Newcomer:
    """One person's checkout-and-terminal: `make run` in the repository with this PQ_HOME."""

    home: Path
    port: int = field(default_factory=free_port)
    dashboard_port: int = field(default_factory=free_port)
    terminals: list[Terminal] = field(default_factory=list)

    def env(self, **extra: str) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith("PQ_")}
        base.update(
            {
                "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
                "TERM": "dumb",
                "PQ_HOME": str(self.home),
                "PQ_PRODUCER_PORT": str(self.port),
                "PQ_DASHBOARD_PORT": str(self.dashboard_port),
                "PQ_ALGORITHM": SLEEP,
            }
        )
        base.update(extra)
        return base

    def terminal(self, command: str, **env: str) -> Terminal:
        """`command` typed into a new terminal in the repository (bash -c, so pipes work)."""
        opened = Terminal(["bash", "-c", command], self.env(**env), REPO)
        self.terminals.append(opened)
        return opened

    def store(self) -> PersistentQ:
        return pqueue.connect(settings=pqueue.load_settings(home=self.home))

    def supervisord(self) -> psutil.Process | None:
        with contextlib.suppress(OSError, ValueError, psutil.Error):
            return psutil.Process(int((self.home / "var" / "run" / "supervisord.pid").read_text()))
        return None

    def supervisorctl_pid(self, program: str) -> int:
        """`supervisorctl -c supervisord.conf pid PROGRAM` for this home, as the README's tour runs it
        (0 while the program is not running)."""
        done = subprocess.run(
            [str(BIN / "supervisorctl"), "-c", str(self.home / "supervisord.conf"), "pid", program],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        return int(done.stdout.strip()) if done.stdout.strip().isdigit() else 0

    def processes(self) -> list[psutil.Process]:
        """supervisord and every program it runs for this home."""
        found = self.supervisord()
        if found is None:
            return []
        with contextlib.suppress(psutil.Error):
            return [found, *found.children(recursive=True)]
        return [found]

    def cleanup(self) -> None:
        for opened in self.terminals:
            opened.close()  # pq-run's death stops supervisord (its parent-death signal)
        left = self.processes()
        gone, alive = psutil.wait_procs(left, timeout=60)
        for process in alive:
            with contextlib.suppress(psutil.Error, ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
                process.kill()


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def gone(processes: list[psutil.Process]) -> bool:
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                return False
    return True
