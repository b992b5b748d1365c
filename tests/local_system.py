"""A running system for tests: the real pq-producer (on a free port) and pq-consumer on one test
database, started as processes and stopped (with their process groups) when the block ends."""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.programs import Process, Programs, stop_program, wait_healthy
from tests.support import free_port


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
    programs: Programs, env: dict[str, str], logs: Path, consumer: bool = True, verify: ssl.SSLContext | None = None
) -> Iterator[LocalSystem]:
    """Start the intake (and a consumer) with these PQ_* variables; wait until /healthz answers.

    With `verify` (a context that trusts PQ_TLS_CERTFILE's issuer) the intake serves HTTPS."""
    port = free_port()
    full = {**env, "PQ_PRODUCER_PORT": str(port)}
    started: list[Process] = []
    scheme = "http" if verify is None else "https"
    system = LocalSystem(f"{scheme}://127.0.0.1:{port}", port, full, logs)
    try:
        producer = programs.start("pq-producer", env=full, log=logs / "producer.log")
        started.append(producer)
        if consumer:
            started.append(programs.start("pq-consumer", env=full, log=logs / "consumer.log"))
        wait_healthy(system.url, producer, verify=verify or True, log_path=logs / "producer.log")
        yield system
    finally:
        for process in started:
            stop_program(process)
