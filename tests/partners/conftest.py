"""The partners tests' fixture: real `pq-consumer` processes running the ledger algorithm."""

from __future__ import annotations

import os

import pytest

from tests.programs import Process, Programs, StartConsumer

# PQ_TEST_CLAIM_AHEAD=1 runs these consumers claiming ahead (PQ_CLAIM_AHEAD).
AHEAD = {"PQ_CLAIM_AHEAD": os.environ.get("PQ_TEST_CLAIM_AHEAD", "0")}


@pytest.fixture
def start_consumer(db_env: dict[str, str], programs: Programs) -> StartConsumer:
    """Start `pq-consumer` running the ledger algorithm (started and stopped the one way)."""

    def launch(**overrides: str) -> Process:
        env = {**db_env, "PQ_ALGORITHM": "tests.partners.ledger:run", "PQ_MAX_RUNNING": "1", **AHEAD, **overrides}
        return programs.start("pq-consumer", env=env)

    return launch
