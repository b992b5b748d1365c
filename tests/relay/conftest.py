"""Fixtures for the relay tests: a fresh set of RabbitMQ queues per test, and the real programs."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import pqueue
from pqueue import PersistentQ
from relay.topology import Routing
from tests.programs import stop_and_check
from tests.relay.rabbit import Rabbit, rabbit_reachable, rabbit_url
from tests.relay.running import FAST, RelayPrograms
from tests.support import IN_CI


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


@pytest.fixture
def programs(tmp_path: Path) -> Iterator[RelayPrograms]:
    """The test's programs, with pq-relay and sample agents a call away."""
    running = RelayPrograms(tmp_path)
    yield running
    stop_and_check(running)
