"""The partners tests' fixture: real `pq-consumer` processes running the ledger algorithm."""

from __future__ import annotations

import pytest

from tests.programs import CLAIM_AHEAD_ENV, Process, Programs, StartConsumer


@pytest.fixture
def start_consumer(db_env: dict[str, str], programs: Programs) -> StartConsumer:
    """Start `pq-consumer` running the ledger algorithm (started and stopped the one way)."""

    def launch(**overrides: str) -> Process:
        ledger = {"PQ_ALGORITHM": "tests.partners.ledger:run", "PQ_MAX_RUNNING": "1"}
        env = {**db_env, **ledger, **CLAIM_AHEAD_ENV, **overrides}
        return programs.start("pq-consumer", env=env)

    return launch
