"""A real `pq-producer` for the fault tests: started on a port of ours, waited for until it answers."""

from __future__ import annotations

from tests.programs import Process, StartProgram, wait_healthy


def start_producer(start_program: StartProgram, port: int, **overrides: str) -> Process:
    """pq-producer on 127.0.0.1:port, answering /healthz with 200 (a crash fails the test)."""
    process = start_program("pq-producer", "--port", str(port), **overrides)
    wait_healthy(f"http://127.0.0.1:{port}", process, timeout=60)
    return process
