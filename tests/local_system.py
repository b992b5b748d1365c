"""A running system for tests: the real pq-producer (on a free port) and pq-consumer on one test
database, started as processes and stopped (with their process groups) when the block ends."""

from __future__ import annotations

import contextlib
import ssl
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support import BIN, free_port, start, stop, wait_until


@dataclass(frozen=True)
class LocalSystem:
    """Where the started system is: the intake's URL, its port, and the environment it runs with."""

    url: str
    port: int
    env: dict[str, str]
    logs: Path

    def log(self, program: str) -> str:
        return (self.logs / f"{program}.log").read_text()


@contextlib.contextmanager
def local_system(
    env: dict[str, str], logs: Path, consumer: bool = True, verify: ssl.SSLContext | None = None
) -> Iterator[LocalSystem]:
    """Start the intake (and a consumer) with these PQ_* variables; wait until /healthz answers.

    With `verify` (a context that trusts PQ_TLS_CERTFILE's issuer) the intake serves HTTPS."""
    port = free_port()
    full = {**env, "PQ_PRODUCER_PORT": str(port)}
    logs.mkdir(parents=True, exist_ok=True)
    started: list[subprocess.Popen[bytes]] = []
    scheme = "http" if verify is None else "https"
    system = LocalSystem(f"{scheme}://127.0.0.1:{port}", port, full, logs)
    try:
        producer = start([str(BIN / "pq-producer")], full, logs / "producer.log")
        started.append(producer)
        if consumer:
            started.append(start([str(BIN / "pq-consumer")], full, logs / "consumer.log"))

        def healthy() -> bool:
            if producer.poll() is not None:
                raise AssertionError(f"pq-producer exited with {producer.returncode}:\n{system.log('producer')}")
            try:
                return httpx.get(f"{system.url}/healthz", timeout=2, verify=verify or True).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(healthy, timeout=90, interval=0.1, what="pq-producer to answer /healthz")
        yield system
    finally:
        for process in started:
            stop(process)
