"""Shared fixtures: a real database per test on SQLite and PostgreSQL, and settings for it."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import pqueue
from pqueue import PersistentQ, Settings
from tests.callbacks.partner import Partner
from tests.postgres import POSTGRES_URL, SchemaPool, drop_schema, require_postgres
from tests.programs import Programs, stop_and_check
from tests.support import copy_sqlite

pytest_plugins = ["tests.order"]  # the longest tests start first

PROGRAMS = pytest.StashKey[Programs]()  # the test's programs, for db_env to stop first
SCHEMA_POOL = pytest.StashKey[SchemaPool]()  # the pool the test's schema came from

# Tests build their own settings; nothing leaks in from the shell (PQ_TEST_* is for tests only).
for _name in [n for n in os.environ if n.startswith("PQ_") and not n.startswith("PQ_TEST_")]:
    del os.environ[_name]


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    """Which database the test runs on; every library test runs on both."""
    return str(request.param)


@pytest.fixture(scope="session")
def postgres_schemas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SchemaPool]:
    """This test process's pool of migrated PostgreSQL schemas (made on the first PostgreSQL test
    that opens a store; all dropped when the process ends)."""
    pool = SchemaPool(require_postgres(), tmp_path_factory.mktemp("postgres"))
    yield pool
    pool.close()


@pytest.fixture
def db_env(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    """PQ_* variables naming a fresh database: a SQLite file, or a PostgreSQL schema of its own
    (given back to the pool, emptied, or dropped, when the test and its programs are done)."""
    if backend == "sqlite":
        yield {"PQ_HOME": str(tmp_path), "PQ_DATABASE_URL": f"sqlite:///{tmp_path / 'var' / 'pqueue.db'}"}
        return
    url = require_postgres()
    schema = "t_" + uuid.uuid4().hex[:16]
    yield {"PQ_HOME": str(tmp_path), "PQ_DATABASE_URL": url, "PQ_DB_SCHEMA": schema}
    programs = request.node.stash.get(PROGRAMS, None)
    if programs is not None:  # no program of the test may still use the schema
        programs.stop_programs()
    pool = request.node.stash.get(SCHEMA_POOL, None)
    if pool is not None and schema in pool.lent:
        pool.give_back(schema)
    else:
        drop_schema(url, schema)


@pytest.fixture
def make_settings(db_env: dict[str, str]) -> Callable[..., Settings]:
    """Settings for the test database, with overrides: make_settings(lease_seconds=2)."""

    def build(**overrides: Any) -> Settings:
        base: dict[str, Any] = {
            "home": Path(db_env["PQ_HOME"]),
            "database_url": db_env["PQ_DATABASE_URL"],
            "db_schema": db_env.get("PQ_DB_SCHEMA"),
        }
        base.update(overrides)
        return pqueue.load_settings(**base)

    return build


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated to head once per test process. A test's first store copies it
    instead of running every migration again (about 0.13 s a test); the migration tests migrate
    from empty and from each revision themselves."""
    home = tmp_path_factory.mktemp("migrated")
    path = home / "pqueue.db"
    pqueue.connect(settings=pqueue.load_settings(home=home, database_url=f"sqlite:///{path}"), migrate=True).close()
    return path


@pytest.fixture
def make_queue(
    make_settings: Callable[..., Settings], db_env: dict[str, str], request: pytest.FixtureRequest
) -> Iterator[Callable[..., PersistentQ]]:
    """Open (and migrate) the test database; every store opened is closed afterwards. The test's
    own database starts as one migrated once per test process (SQLite: a file copied; PostgreSQL:
    a schema of the process's pool takes the test's schema name): no migration runs."""
    opened: list[PersistentQ] = []
    sqlite_prefix = "sqlite:///"
    first = True

    def open_queue(**overrides: Any) -> PersistentQ:
        nonlocal first
        settings = make_settings(**overrides)
        url = str(settings.database_url)
        if first and url == db_env["PQ_DATABASE_URL"] and settings.db_schema == db_env.get("PQ_DB_SCHEMA"):
            first = False
            if url.startswith(sqlite_prefix):
                path = Path(url.removeprefix(sqlite_prefix))
                if not path.exists():
                    copy_sqlite(request.getfixturevalue("migrated_sqlite"), path)
            elif settings.db_schema is not None and url == POSTGRES_URL:
                pool: SchemaPool = request.getfixturevalue("postgres_schemas")
                request.node.stash[SCHEMA_POOL] = pool
                pool.take(settings.db_schema)
        store = pqueue.connect(settings=settings, migrate=True)
        opened.append(store)
        return store

    yield open_queue
    for store in opened:
        store.close()


@pytest.fixture
def q(make_queue: Callable[..., PersistentQ]) -> PersistentQ:
    """A migrated queue on the test database with default settings."""
    return make_queue()


@pytest.fixture
def partner() -> Iterator[Partner]:
    """A partner on 127.0.0.1 that receives callbacks and answers 200 unless told otherwise."""
    server = Partner().start()
    yield server
    server.stop()


@pytest.fixture
def programs(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Programs]:
    """Start real programs: programs.start("pq-consumer", env=…). Each is stopped after the test,
    its log printed, and a process of the test's that outlived it fails the test."""
    running = Programs(tmp_path)
    request.node.stash[PROGRAMS] = running  # db_env stops them before the test's schema goes
    yield running
    stop_and_check(running)
