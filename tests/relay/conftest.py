"""Fixtures for the relay tests: a fresh set of RabbitMQ queues per test, and the real programs."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import pqueue
from pqueue import PersistentQ, Status
from relay.topology import Routing
from tests.conftest import IN_CI
from tests.relay.rabbit import Rabbit, rabbit_reachable, rabbit_url
from tests.relay.records import read_records
from tests.support import start, stop

# The relay's lease must outlast an agent's start on a loaded machine; tests that need rescue
# shorten it. A tiny PQ_LEASE_SECONDS keeps rescue's safety margin small.
FAST = {
    "PQ_RELAY_LEASE_SECONDS": "30",
    "PQ_LEASE_SECONDS": "1",
    "PQ_RETRY_BACKOFF_SECONDS": "0",
    "PQ_LOG_LEVEL": "INFO",
}


@pytest.fixture
def backend() -> str:
    """Relay tests run on SQLite; a test opts into PostgreSQL by parametrizing `backend`."""
    return "sqlite"


@pytest.fixture
def routing() -> Iterator[Routing]:
    """A queue name of the test's own, so its exchange bindings and queues meet no other test."""
    if not rabbit_reachable():
        if IN_CI:
            pytest.fail("RabbitMQ is not reachable on 127.0.0.1:5672: relay tests must run in CI")
        pytest.skip("RabbitMQ is not reachable on 127.0.0.1:5672")
    yield Routing("t" + uuid.uuid4().hex[:12])


@pytest.fixture
def rabbit(routing: Routing) -> Iterator[Rabbit]:
    handle = Rabbit(routing)
    yield handle
    handle.delete_queues()
    handle.close()


@pytest.fixture
def relay_env(db_env: dict[str, str], routing: Routing) -> Callable[..., dict[str, str]]:
    """PQ_* for the relay and agents of this test: relay_env(PQ_RELAY_WINDOW="5")."""

    def build(**overrides: str) -> dict[str, str]:
        env = {**db_env, **FAST, "PQ_RELAY_QUEUE": routing.queue, "PQ_AMQP_URL": rabbit_url()}
        env.update(overrides)
        return env

    return build


@pytest.fixture
def store(relay_env: Callable[..., dict[str, str]]) -> Iterator[PersistentQ]:
    """The test's database, migrated, with the relay's settings."""
    env = relay_env()
    settings = pqueue.load_settings(
        home=Path(env["PQ_HOME"]),
        database_url=env["PQ_DATABASE_URL"],
        db_schema=env.get("PQ_DB_SCHEMA"),
        relay_queue=env["PQ_RELAY_QUEUE"],
    )
    opened = pqueue.connect(settings=settings, migrate=True)
    yield opened
    opened.close()


class Programs:
    """Starts pq-relay and sample agents; everything started is killed at the end of the test."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.started: list[subprocess.Popen[bytes]] = []

    def relay(self, env: dict[str, str], *args: str, log: str = "relay.log") -> subprocess.Popen[bytes]:
        return self._start(["pq-relay", *args], env, log)

    def agent(self, env: dict[str, str], name: str, *args: str) -> subprocess.Popen[bytes]:
        record = self.tmp_path / f"{name}.jsonl"
        command = [sys.executable, "-m", "relay.agent", "--name", name, "--record", str(record)]
        command += ["--queue", env["PQ_RELAY_QUEUE"], "--amqp-url", env["PQ_AMQP_URL"], *args]
        return self._start(command, env, f"{name}.log")

    def _start(self, command: list[str], env: dict[str, str], log: str) -> subprocess.Popen[bytes]:
        process = start(command, env, self.tmp_path / log)
        self.started.append(process)
        return process

    def agent_ready(self, name: str) -> bool:
        return "consuming" in self.log(f"{name}.log")

    def log(self, name: str = "relay.log") -> str:
        path = self.tmp_path / name
        return path.read_text(errors="replace") if path.exists() else ""

    def records(self) -> list[dict[str, Any]]:
        """Every agent's start and finish lines, in time order."""
        return read_records(self.tmp_path)

    def stop_all(self) -> None:
        for process in self.started:
            stop(process)


@pytest.fixture
def programs(tmp_path: Path) -> Iterator[Programs]:
    running = Programs(tmp_path)
    yield running
    running.stop_all()


def counts(store: PersistentQ, queue: str) -> dict[str, int]:
    """Jobs of the queue by status."""
    return store.stats().counts.get(queue, {})


def all_final(store: PersistentQ, queue: str, total: int) -> bool:
    by_status = counts(store, queue)
    finished = sum(by_status.get(s.value, 0) for s in (Status.PROCESSED, Status.MANUAL_INTERVENTION))
    return finished == total


def assert_no_overlapping_runs(records: list[dict[str, Any]]) -> None:
    """Each claim (job id, lease id) reached an agent once, and no job started on an agent while
    an earlier copy of it was still being worked on."""
    seen: set[tuple[int, int]] = set()
    running: set[int] = set()
    for line in records:
        job_id, lease_id = line["job_id"], line["lease_id"]
        if line["event"] == "start":
            assert (job_id, lease_id) not in seen, f"job {job_id} lease {lease_id} reached an agent twice"
            assert job_id not in running, f"job {job_id} ran on two agents at once"
            seen.add((job_id, lease_id))
            running.add(job_id)
        else:
            running.discard(job_id)
