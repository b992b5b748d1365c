"""Fixtures for the `pq` tests: a runner on the test database and jobs in every state."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from typer.testing import CliRunner, Result

from admin.cli import app
from pqueue import PersistentQ
from tests.admin.cli_support import Jobs, Pq


@pytest.fixture
def pq(db_env: dict[str, str]) -> Pq:
    """Run `pq ARGS...` in-process (Typer's CliRunner) against the test database."""
    runner = CliRunner()

    def run(*args: str, input: str | None = None, env: dict[str, str] | None = None) -> Result:
        result = runner.invoke(app, list(args), env=env or db_env, input=input, prog_name="pq")
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception  # an unexpected error: show its traceback in the test report
        return result

    return run


@pytest.fixture
def jobs(q: PersistentQ) -> Jobs:
    """Make jobs in the test database (migrated by `q`)."""
    return Jobs(q)


@pytest.fixture
def aged(make_queue: Callable[..., PersistentQ]) -> Callable[[float], Jobs]:
    """Jobs made `days` ago: a store whose clock runs behind (the CLI's own store does not)."""

    def make(days: float) -> Jobs:
        store = make_queue()
        store.clock_offset = timedelta(days=-days)
        return Jobs(store)

    return make
