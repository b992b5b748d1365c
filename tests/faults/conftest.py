"""The fault suite's fixture: real pqueue programs with the suite's short leases.

Every program is started the one way (tests/programs.py): with the test's marker in its
environment, which its helper and job processes inherit, so that after the test no process of
ours may be left, whatever the fault was (an orphan fails the test, and is killed).
"""

from __future__ import annotations

import pytest

from tests.faults.settings import BASE_ENV
from tests.programs import Process, Programs, StartProgram


@pytest.fixture
def run_marker(programs: Programs) -> str:
    """The marker every process of this test carries."""
    return programs.marker


@pytest.fixture
def start_program(db_env: dict[str, str], programs: Programs) -> StartProgram:
    """Start a console script (pq-consumer, pq-producer, …) on the test database with overrides:
    start_program("pq-consumer", PQ_JOB_TIMEOUT="1"), inside a network namespace with netns=….
    Each logs to <program>-<n>.log, n counting every program the test started."""

    def launch(program: str, *args: str, netns: str | None = None, **overrides: str) -> Process:
        return programs.start(program, *args, env={**db_env, **BASE_ENV, **overrides}, netns=netns)

    return launch
