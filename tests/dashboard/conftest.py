"""Fixtures for the dashboard: a seeded SQLite database named to the app through PQ_* variables."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from pqueue import PersistentQ
from tests.dashboard.seed import Seeded, seed_every_state

APP = Path(__file__).resolve().parents[2] / "ops_dashboard" / "app.py"


@pytest.fixture
def backend() -> str:
    """AppTest runs the app in this process; SQLite is enough for the page (the library's own
    tests cover PostgreSQL)."""
    return "sqlite"


@pytest.fixture
def store(make_queue: Callable[..., PersistentQ]) -> PersistentQ:
    """The test's own handle on the database; a long backoff keeps crashed jobs where seeded."""
    return make_queue(retry_backoff_seconds=3600)


@pytest.fixture
def seeded(store: PersistentQ) -> Seeded:
    return seed_every_state(store)


@pytest.fixture
def app_env(db_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """AppTest runs the script in this process, so the app reads these through load_settings()."""
    for name, value in db_env.items():
        monkeypatch.setenv(name, value)
    return db_env


@pytest.fixture
def make_app(app_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Callable[..., AppTest]:
    """A fresh browser session on the dashboard, run once; extra PQ_* variables as keywords."""

    def start(**env: str) -> AppTest:
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        app = AppTest.from_file(str(APP), default_timeout=30)
        app.run()
        return app

    return start
