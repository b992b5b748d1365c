"""A real `pq-producer` for the fault tests: started on a port of ours, waited for until it answers."""

from __future__ import annotations

import subprocess

import httpx

from tests.faults.conftest import StartProgram
from tests.support import wait_until


def start_producer(start_program: StartProgram, port: int, **overrides: str) -> subprocess.Popen[bytes]:
    """pq-producer on 127.0.0.1:port, answering /healthz with 200 (a crash fails the test)."""
    process = start_program("pq-producer", "--port", str(port), **overrides)
    wait_healthy(f"http://127.0.0.1:{port}", process)
    return process


def wait_healthy(url: str, process: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    """Wait until the intake says its database answers."""

    def healthy() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"pq-producer exited with {process.returncode} (its log is printed below)")
        try:
            return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(healthy, timeout=timeout, interval=0.05, what=f"pq-producer at {url} to answer /healthz")
