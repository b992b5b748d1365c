"""connect(): a library user gets a working queue; `pq` and the dashboard never create one."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy
from typer.testing import CliRunner

import pqueue
from admin.cli import app as pq_app
from ops_dashboard.connection import open_store
from pqueue import DatabaseMissing, SchemaOutOfDate, Settings, Status
from pqueue.database import head_revision, make_engine, upgrade
from tests.db.old_revisions import put_as_first_revision


def _has_pqueue_tables(settings: Settings) -> bool:
    """Whether anything created pqueue's tables in the test database (file or schema)."""
    path = settings.resolved_database_url.removeprefix("sqlite:///")
    if settings.resolved_database_url.startswith("sqlite") and not Path(path).exists():
        return False
    engine = sqlalchemy.create_engine(settings.resolved_database_url)
    try:
        with engine.connect() as conn:
            return "pq_jobs" in sqlalchemy.inspect(conn).get_table_names(schema=settings.db_schema)
    finally:
        engine.dispose()


def _sqlite_nested(tmp_path: Path) -> Settings:
    missing = tmp_path / "new" / "dir" / "pqueue.db"
    return pqueue.load_settings(home=tmp_path, database_url=f"sqlite:///{missing}")


def test_connect__creates_the_database_and_its_schema(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    assert not _has_pqueue_tables(settings)
    store = pqueue.connect(settings=settings)
    try:
        job_id = store.put_item({"a": 1})
        assert store.get_job(job_id).status == Status.UNPROCESSED
    finally:
        store.close()
    assert _has_pqueue_tables(settings)


def test_connect__creates_missing_sqlite_directories(tmp_path: Path) -> None:
    settings = _sqlite_nested(tmp_path)
    store = pqueue.connect(settings.resolved_database_url, settings=settings)
    try:
        assert store.count_items() == 0
    finally:
        store.close()
    assert (tmp_path / "new" / "dir" / "pqueue.db").is_file()


def test_connect__brings_an_old_schema_up_to_date(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    engine = make_engine(settings.resolved_database_url, settings)
    try:
        upgrade(engine, settings.db_schema, "0001")
        job_id = put_as_first_revision(engine, {"kept": True})
    finally:
        engine.dispose()
    pqueue.connect(settings=settings).close()
    store = pqueue.connect(settings=settings, migrate=False)  # at this code's revision now
    try:
        assert store.get_job(job_id).payload == {"kept": True}
    finally:
        store.close()
    assert pqueue.migrate(settings=settings) == (head_revision(), head_revision())


def test_connect_without_migrate__refuses_and_creates_nothing(
    backend: str, make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = make_settings()
    if backend == "sqlite":
        missing = tmp_path / "var" / "pqueue.db"
        with pytest.raises(DatabaseMissing, match=f"^database {missing} does not exist;.*`pq migrate`$"):
            pqueue.connect(settings=settings, migrate=False)
        assert not missing.parent.exists()
    else:
        with pytest.raises(SchemaOutOfDate, match="^database has no pqueue schema; .*run `pq migrate`$"):
            pqueue.connect(settings=settings, migrate=False)
    assert not _has_pqueue_tables(settings)


def test_connect_without_migrate__refuses_an_old_schema(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    engine = make_engine(settings.resolved_database_url, settings)
    try:
        upgrade(engine, settings.db_schema, "0001")
    finally:
        engine.dispose()
    with pytest.raises(SchemaOutOfDate, match=f"revision 0001; this code needs {head_revision()}"):
        pqueue.connect(settings=settings, migrate=False)


def test_pq__refuses_to_create_the_database(
    backend: str, db_env: dict[str, str], make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    result = CliRunner().invoke(pq_app, ["list"], env=db_env, prog_name="pq")
    assert result.exit_code == 1
    [line] = result.stderr.strip().splitlines()
    missing = f"database {tmp_path / 'var' / 'pqueue.db'} does not exist"
    expected = missing if backend == "sqlite" else "no pqueue schema"
    assert expected in line and line.endswith("`pq migrate`"), line
    assert not _has_pqueue_tables(make_settings())


def test_dashboard__refuses_to_create_the_database(
    backend: str, make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = make_settings()
    expected = DatabaseMissing if backend == "sqlite" else SchemaOutOfDate
    with pytest.raises(expected, match="`pq migrate`$"):
        open_store(settings)
    assert not _has_pqueue_tables(settings)
