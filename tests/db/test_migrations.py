"""Schema migrations: upgrades keep data, match the models, and tolerate programs starting together."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

import pqueue
from pqueue import SchemaOutOfDate, Settings, Status
from pqueue.database import SCHEMA_REVISION, VERSION_TABLE, head_revision, make_engine, upgrade
from pqueue.schema import deliveries, events, metadata
from pqueue.store import PersistentQ
from tests.db import workers
from tests.db.old_revisions import put_as_first_revision
from tests.db.workers import drain, overrides_of
from tests.support import RACES


def test_schema_revision__is_the_head_of_the_migrations() -> None:
    assert head_revision() == SCHEMA_REVISION, "a new migration: set pqueue.database.SCHEMA_REVISION to it"


def test_opening_a_database_at_head__imports_neither_alembic_nor_another_backends_driver(
    backend: str, make_queue: Callable[..., PersistentQ], db_env: dict[str, str]
) -> None:
    """What every program's start pays (CPU and memory): Alembic only to migrate, psycopg only on
    PostgreSQL. In a process of its own, since this one imported both long ago."""
    make_queue().close()  # migrated to head
    opened = "import sys, pqueue; pqueue.connect().close(); print(sorted({m.split('.')[0] for m in sys.modules}))"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PQ_")} | db_env
    loaded = subprocess.run([sys.executable, "-c", opened], env=env, capture_output=True, text=True, check=True)
    modules = loaded.stdout
    assert "'alembic'" not in modules and "'mako'" not in modules
    assert ("'psycopg'" in modules) == (backend == "postgresql")


def test_upgrade_from_first_revision__keeps_data(settings: Settings) -> None:
    engine = make_engine(settings.resolved_database_url, settings)
    try:
        assert upgrade(engine, settings.db_schema, "0001") == (None, "0001")
        job_id = put_as_first_revision(engine, {"kept": True}, priority=2)
        with pytest.raises(
            SchemaOutOfDate, match=f"revision 0001; this code needs {head_revision()}; run `pq migrate`"
        ):
            pqueue.connect(settings=settings, migrate=False)
        assert upgrade(engine, settings.db_schema) == ("0001", head_revision())
    finally:
        engine.dispose()
    store = pqueue.connect(settings=settings)
    try:
        job = store.get_job(job_id)
        assert (job.payload, job.priority, job.status) == ({"kept": True}, 2, Status.UNPROCESSED)
        assert store.workers() == [] and store.delivery(job_id) is None
    finally:
        store.close()


def test_upgrade_from_0002__finished_jobs_stay_purgeable_and_waiting_ones_stay(settings: Settings) -> None:
    engine = make_engine(settings.resolved_database_url, settings)
    try:
        assert upgrade(engine, settings.db_schema, "0002") == (None, "0002")
        waiting = [put_as_first_revision(engine, {"n": n}) for n in range(3)]
        finished = put_as_first_revision(engine, "done", queue="once")
        with engine.begin() as conn:  # finished as 0002's code did it (today's claim needs 0005's column)
            conn.exec_driver_sql(
                f"UPDATE pq_jobs SET status = 'processed', finished_at = created_at WHERE id = {finished}"
            )
        assert upgrade(engine, settings.db_schema) == ("0002", head_revision())
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
            assert compare_metadata(context, metadata) == []
    finally:
        engine.dispose()
    store = pqueue.connect(settings=settings)
    try:
        assert store.purge(0, ["processed"], dry_run=True) == 1
        assert store.purge(0, ["processed"]) == 1
        assert [j.id for j in store.get_all_items(oldest_first=True).items] == waiting
    finally:
        store.close()


def test_upgrade_from_0003__seats_and_pause_kept_policy_unset(settings: Settings) -> None:
    engine = make_engine(settings.resolved_database_url, settings)
    try:
        assert upgrade(engine, settings.db_schema, "0003") == (None, "0003")
        put_as_first_revision(engine, "waiting", queue="remote")
        with engine.begin() as conn:
            conn.exec_driver_sql("INSERT INTO pq_queues (name, seats, paused) VALUES ('remote', 3, true)")
        assert upgrade(engine, settings.db_schema) == ("0003", head_revision())
    finally:
        engine.dispose()
    store = pqueue.connect(settings=settings)
    try:
        info = store.queue_settings("remote")
        assert info is not None and (info.seats, info.paused) == (3, True)
        assert (info.max_attempts, info.lease_seconds) == (settings.max_attempts, settings.lease_seconds)
    finally:
        store.close()


def test_upgrade_from_0006__table_rebuilds_keep_every_event_and_delivery(settings: Settings) -> None:
    """SQLite rebuilds pq_jobs (0007, 0011): with foreign keys on, dropping the old table cascaded."""
    engine = make_engine(settings.resolved_database_url, settings)
    try:
        assert upgrade(engine, settings.db_schema, "0006") == (None, "0006")
        job_id = put_as_first_revision(engine, "kept")
        now = datetime.now(UTC)
        with engine.begin() as conn:
            conn.execute(events.insert().values(job_id=job_id, to_status="unprocessed", at=now, actor="test"))
            delivery = {"url": "http://partner.example/cb", "body": "{}", "status": "pending"}
            conn.execute(
                deliveries.insert().values(job_id=job_id, lease_id=1, created_at=now, next_attempt_at=now, **delivery)
            )
        assert upgrade(engine, settings.db_schema) == ("0006", head_revision())
    finally:
        engine.dispose()
    store = pqueue.connect(settings=settings)
    try:
        assert [e.to_status for e in store.events(job_id)] == [Status.UNPROCESSED]
        delivery_kept = store.delivery(job_id)
        assert delivery_kept is not None and delivery_kept.url == "http://partner.example/cb"
    finally:
        store.close()


def test_migrations__produce_the_models_schema(q: PersistentQ) -> None:
    with q.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
        assert compare_metadata(context, metadata) == []


def test_migrate__waits_while_another_program_is_creating_the_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "pqueue.db"
    creator = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    creator.execute("BEGIN EXCLUSIVE")  # a new file, still in rollback mode, locked as while migrating
    creator.execute("CREATE TABLE made_first (id INTEGER)")
    release = threading.Timer(0.5, creator.execute, ["COMMIT"])
    release.start()
    try:
        assert pqueue.migrate(settings=pqueue.load_settings(database_url=f"sqlite:///{path}")) == (
            None,
            head_revision(),
        )
    finally:
        release.join()
        creator.close()


@pytest.mark.process
@RACES
@pytest.mark.timeout(180)
def test_four_programs_starting_together__all_migrate_safely(make_settings: Callable[..., Settings]) -> None:
    overrides = overrides_of(make_settings())
    out, barrier = workers.PROCESSES.Queue(), workers.PROCESSES.Barrier(4)
    processes = [
        workers.PROCESSES.Process(target=workers.open_and_migrate, args=(overrides, barrier, out)) for _ in range(4)
    ]
    for process in processes:
        process.start()
    messages = drain(out, lambda m: len(m) >= 4, timeout=150)
    for process in processes:
        process.join(10)
    assert [m[0] for m in messages] == ["ok"] * 4, [m[1] for m in messages if m[0] == "error"]
    store = pqueue.connect(settings=make_settings())
    try:
        assert store.count_items() == 4
    finally:
        store.close()
