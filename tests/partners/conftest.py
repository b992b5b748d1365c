"""The partners tests' fixture: real `pq-consumer` processes running the ledger algorithm."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.partners.ledger import StartConsumer
from tests.support import BIN, start, stop

# PQ_TEST_CLAIM_AHEAD=1 runs these consumers claiming ahead (PQ_CLAIM_AHEAD).
AHEAD = {"PQ_CLAIM_AHEAD": os.environ.get("PQ_TEST_CLAIM_AHEAD", "0")}


@pytest.fixture
def start_consumer(db_env: dict[str, str], tmp_path: Path) -> Iterator[StartConsumer]:
    """Start `pq-consumer` running the ledger algorithm; each one is stopped afterwards and its
    log printed (pytest shows it when the test failed)."""
    started: list[tuple[subprocess.Popen[bytes], Path]] = []

    def launch(**overrides: str) -> subprocess.Popen[bytes]:
        log_path = tmp_path / f"consumer-{len(started)}.log"
        env = {**db_env, "PQ_ALGORITHM": "tests.partners.ledger:run", "PQ_MAX_RUNNING": "1", **AHEAD, **overrides}
        process = start([str(BIN / "pq-consumer")], env, log_path)
        started.append((process, log_path))
        return process

    yield launch
    for process, log_path in started:
        stop(process)
        print(f"--- {log_path.name} (exit {process.returncode}) ---")
        print(log_path.read_text(errors="replace") if log_path.exists() else "(no log)")
