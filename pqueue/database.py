"""Engines, connection settings and schema migrations for SQLite and PostgreSQL."""

from __future__ import annotations

import re
import sqlite3
import time
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event, make_url, text
from sqlalchemy.exc import ArgumentError, DBAPIError, DisconnectionError, SQLAlchemyError
from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_random

from pqueue.dialects import seat_lock_key
from pqueue.errors import DatabaseError, DatabaseMissing, SchemaOutOfDate
from pqueue.settings import Settings

VERSION_TABLE = "pq_alembic_version"
MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# SQLite's own busy handler sleeps longer and longer (up to 100 ms) while another writer holds
# the lock, so under contention a writer keeps missing the moments the lock is free. pqueue lets
# it wait briefly, then retries the whole transaction itself at a steady few milliseconds, up to
# PQ_WRITE_TIMEOUT (see PersistentQ._write).
SQLITE_BUSY_TIMEOUT_MS = 50
# Migrations hold the lock for longer than a transaction does; programs starting together wait.
SQLITE_MIGRATION_BUSY_TIMEOUT_MS = 120_000
# A pooled PostgreSQL connection idle longer than this is pinged before it is used again.
PING_IF_IDLE_SECONDS = 1.0
_SCHEMA_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def sqlite_path(url: str) -> Path | None:
    """The absolute file of a SQLite URL, or None for another database."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise DatabaseError(f"{url!r} is not a database URL (sqlite:///path or postgresql+psycopg://…)") from None
    if parsed.get_backend_name() != "sqlite":
        return None
    if not parsed.database or parsed.database == ":memory:":
        raise DatabaseError("pqueue needs a SQLite file, not an in-memory database")
    return Path(parsed.database).expanduser().resolve()


def describe_url(url: str) -> str:
    """The database named for a log line: the absolute SQLite path, or the URL without password."""
    path = sqlite_path(url)
    if path is not None:
        return str(path)
    return make_url(url).render_as_string(hide_password=True)


def make_engine(url: str, settings: Settings) -> Engine:
    """An engine with pqueue's connection settings (schema, busy timeout, durability) for the URL."""
    path = sqlite_path(url)
    if path is not None:
        busy_timeout_ms = min(SQLITE_BUSY_TIMEOUT_MS, int(settings.write_timeout * 1000))
        engine = create_engine(f"sqlite:///{path}", connect_args={"timeout": busy_timeout_ms / 1000})
        _configure_sqlite(engine, busy_timeout_ms, settings.synchronous_commit)
        return engine
    connect_args: dict[str, Any] = {"connect_timeout": 5}
    options = [] if settings.synchronous_commit else ["-csynchronous_commit=off"]
    if settings.db_schema:
        if not _SCHEMA_NAME.match(settings.db_schema):
            raise DatabaseError(f"PQ_DB_SCHEMA={settings.db_schema!r} is not a plain identifier")
        options.append(f"-csearch_path={settings.db_schema}")
    if options:
        connect_args["options"] = " ".join(options)
    try:
        engine = create_engine(url, connect_args=connect_args)
    except ArgumentError as exc:
        raise DatabaseError(f"cannot use the database URL {describe_url(url)}: {exc}") from None
    _ping_idle_connections(engine)
    return engine


def _ping_idle_connections(engine: Engine) -> None:
    """Replace pooled connections that died (PostgreSQL restarted, a network cut) before use.

    SQLAlchemy's pool_pre_ping pings on every checkout: one more round trip for every
    transaction, a quarter of a busy consumer's time. A connection used within the last
    PING_IF_IDLE_SECONDS is taken as alive; one that died in that moment fails its transaction
    once with DatabaseBusy ("database unreachable"), which every caller already handles.
    """

    @event.listens_for(engine, "checkin")
    def on_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info["pq_checked_in"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        if time.monotonic() - record.info.get("pq_checked_in", 0.0) < PING_IF_IDLE_SECONDS:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as exc:
            raise DisconnectionError(f"pooled connection is gone: {exc}") from exc  # the pool reconnects


def _configure_sqlite(engine: Engine, busy_timeout_ms: int, synchronous_commit: bool) -> None:
    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        # pysqlite's own BEGIN is deferred: a read-then-write transaction then fails at once
        # with SQLITE_BUSY, ignoring the busy timeout. We issue BEGIN ourselves (below).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        _switch_to_wal(cursor)
        # FULL: a commit survives power loss, so an acknowledged job is really stored.
        # NORMAL (PQ_SYNCHRONOUS_COMMIT=0) survives a crash of the program, not of the machine.
        cursor.execute(f"PRAGMA synchronous = {'FULL' if synchronous_commit else 'NORMAL'}")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(conn: Connection) -> None:
        # Writers start with IMMEDIATE so they take the write lock (waiting up to the busy
        # timeout) before reading; readers stay DEFERRED and never block writers in WAL mode.
        # On the driver's connection: this runs for every transaction, and exec_driver_sql's
        # bookkeeping costs more than the BEGIN itself.
        begin = f"BEGIN {conn.get_execution_options().get('pq_begin', 'DEFERRED')}"
        try:
            conn.connection.driver_connection.execute(begin)  # type: ignore[union-attr]
        except sqlite3.Error as exc:  # "database is locked" must reach the retry as SQLAlchemy raises it
            raise DBAPIError.instance(begin, (), exc, sqlite3.Error, dialect=engine.dialect) from exc


def _switch_to_wal(cursor: sqlite3.Cursor) -> None:
    """Put the file in WAL mode, waiting while another program is creating it.

    Switching a new file to WAL needs the exclusive lock, which the program creating and
    migrating that file holds until it commits. SQLite often refuses at once rather than wait
    (so that two programs upgrading their locks cannot deadlock), so we retry. Once the file is
    in WAL mode this takes no lock and returns at once.
    """
    for attempt in Retrying(
        retry=retry_if_exception(_is_busy),
        stop=stop_after_delay(SQLITE_MIGRATION_BUSY_TIMEOUT_MS / 1000),
        wait=wait_random(0.005, 0.05),
        reraise=True,
    ):
        with attempt:
            cursor.execute("PRAGMA journal_mode = WAL")


def _is_busy(exc: BaseException) -> bool:
    return isinstance(exc, sqlite3.OperationalError) and exc.sqlite_errorcode == sqlite3.SQLITE_BUSY


def _alembic_config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The schema revision this code needs."""
    head = ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()
    assert head is not None
    return head


def current_revision(connection: Connection) -> str | None:
    """The revision the database is at, or None when it has no pqueue schema."""
    context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
    return context.get_current_revision()


def ensure_exists(url: str) -> None:
    """Raise DatabaseMissing for a SQLite file that is not there (so nothing creates it)."""
    path = sqlite_path(url)
    if path is not None and not path.exists():
        raise DatabaseMissing(str(path))


def check_schema(engine: Engine) -> None:
    """Raise SchemaOutOfDate unless the database is at this code's revision."""
    try:
        with engine.connect() as conn:
            found = current_revision(conn)
    except SQLAlchemyError as exc:
        first_line = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        where = describe_url(engine.url.render_as_string(hide_password=False))
        raise DatabaseError(f"cannot reach the database {where}: {first_line}") from exc
    needed = head_revision()
    if found != needed:
        raise SchemaOutOfDate(found, needed)


def upgrade(engine: Engine, schema: str | None = None, revision: str = "head") -> tuple[str | None, str]:
    """Create or upgrade the schema under a database lock; returns (before, after).

    Programs started together on a fresh database all call this: one migrates, the others
    wait for the lock and then find nothing to do.
    """
    path = sqlite_path(engine.url.render_as_string(hide_password=False))
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with engine.connect() as conn:
            conn.execution_options(pq_begin="IMMEDIATE")
            driver: Any = conn.connection.driver_connection if path is not None else None
            usual_timeout = driver.execute("PRAGMA busy_timeout").fetchone()[0] if driver is not None else 0
            try:
                if driver is not None:
                    driver.execute(f"PRAGMA busy_timeout = {SQLITE_MIGRATION_BUSY_TIMEOUT_MS}")
                with conn.begin():
                    if engine.dialect.name == "postgresql":
                        lock = text("SELECT pg_advisory_xact_lock(:key)")
                        conn.execute(lock, {"key": seat_lock_key("", "migrate")})
                        if schema:
                            conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
                            conn.execute(text(f'SET LOCAL search_path TO "{schema}"'))
                    before = current_revision(conn)
                    command.upgrade(_alembic_config(conn), revision)
                    after = current_revision(conn)
            finally:
                if driver is not None:  # the connection goes back to the pool with its usual timeout
                    driver.execute(f"PRAGMA busy_timeout = {usual_timeout}")
    except SQLAlchemyError as exc:
        raise DatabaseError(f"migration failed: {exc}") from exc
    return before, after or ""
