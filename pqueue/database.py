"""Engines, connection settings and schema migrations for SQLite and PostgreSQL."""

from __future__ import annotations

import math
import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    URL,
    Column,
    Connection,
    Engine,
    MetaData,
    String,
    Table,
    create_engine,
    event,
    inspect,
    select,
    text,
)
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_random

from pqueue import deadlines
from pqueue.dialects import seat_lock_key
from pqueue.errors import DatabaseBusy, DatabaseError, DatabaseMissing, SchemaOutOfDate, driver_message
from pqueue.settings import Settings
from pqueue.transactions import is_read_only, translate
from pqueue.urls import database_url, describe

if TYPE_CHECKING:
    from alembic.config import Config

VERSION_TABLE = "pq_alembic_version"
# The revision of pqueue/migrations/versions this code needs (their head; tests/db/test_migrations.py
# checks it against Alembic's own reading). A program opening a database already at this revision,
# as every start but the first finds it, then never imports Alembic (with Mako and Pygments: about
# 70 ms of CPU and 5 MiB of every program's start); only a migration does.
SCHEMA_REVISION = "0016"
# Alembic's version table as Alembic writes it, read without Alembic.
_VERSIONS = Table(VERSION_TABLE, MetaData(), Column("version_num", String(32), primary_key=True))
MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# SQLite's own busy handler sleeps longer and longer (up to 100 ms) while another writer holds
# the lock, so under contention a writer keeps missing the moments the lock is free. pqueue lets
# it wait briefly, then retries the whole transaction itself at a steady few milliseconds, up to
# PQ_WRITE_TIMEOUT (see Transactions.write in pqueue/transactions.py).
SQLITE_BUSY_TIMEOUT_MS = 50
# Migrations hold the lock for longer than a transaction does; programs starting together wait.
SQLITE_MIGRATION_BUSY_TIMEOUT_MS = 120_000
# A pooled PostgreSQL connection idle longer than this is pinged before it is used again:
# pinging on every checkout (pool_pre_ping) costs a round trip per transaction, a quarter of a
# busy consumer's time. One that died within this moment fails its transaction once with
# DatabaseBusy ("database unreachable"), which every caller already handles.
PING_IF_IDLE_SECONDS = 1.0
# PQ_DB_STATEMENT_TIMEOUT and PQ_DB_NETWORK_TIMEOUT default to lease/6 within these bounds.
MIN_DERIVED_TIMEOUT = 2.0
MAX_DERIVED_TIMEOUT = 5.0
# What make_engine adds to a PostgreSQL URL; log lines name the database without them.
TCP_SETTINGS = (
    "connect_timeout",
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_count",
    "tcp_user_timeout",
)
# Of the hosts a URL names, connect only to the one that takes writes (the primary), unless the
# URL says otherwise: a standby that answers first would leave every write refused. (A URL with
# one host has no choice to make: a standby there is reported as one, see Insights.ping.)
SESSION_ATTRS = ("target_session_attrs", "read-write")
# A PostgreSQL migration may wait for another program's and build indexes on big tables.
POSTGRES_MIGRATION_TIMEOUT_SECONDS = 600
_SCHEMA_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def sqlite_path(url: str) -> Path | None:
    """The absolute file of a SQLite URL, or None for another database (DatabaseUrlError for a URL
    pqueue cannot use)."""
    parsed = database_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    assert parsed.database is not None
    return Path(parsed.database).expanduser().resolve()


def describe_url(url: str) -> str:
    """The database named for a log line: the absolute SQLite path, or the URL without password."""
    path = sqlite_path(url)
    if path is not None:
        return str(path)
    return describe(database_url(url).difference_update_query((*TCP_SETTINGS, SESSION_ATTRS[0])))


def make_engine(url: str, settings: Settings) -> Engine:
    """An engine with pqueue's connection settings (schema, timeouts, durability) for the URL."""
    path = sqlite_path(url)
    if path is not None:
        busy_timeout_ms = min(SQLITE_BUSY_TIMEOUT_MS, int(settings.write_timeout * 1000))
        engine = create_engine(f"sqlite:///{path}", connect_args={"timeout": busy_timeout_ms / 1000})
        _configure_sqlite(engine, busy_timeout_ms, settings.synchronous_commit)
        return engine
    timeouts = PostgresTimeouts.for_settings(settings)
    options = timeouts.server_options()
    # Always set, so a lower default of the server, database or role never weakens what an
    # acknowledgement means: "on" waits for the local flush and for any synchronous standby.
    options.append(f"-csynchronous_commit={'on' if settings.synchronous_commit else 'off'}")
    if settings.db_schema:
        if not _SCHEMA_NAME.match(settings.db_schema):
            raise DatabaseError(f"PQ_DB_SCHEMA={settings.db_schema!r} is not a plain identifier")
        options.append(f"-csearch_path={settings.db_schema}")
    engine = create_engine(
        timeouts.add_tcp_settings(database_url(url)),
        connect_args={"options": " ".join(options)},
        pool_timeout=timeouts.call_deadline,  # waiting for a free connection is a call too
    )
    deadlines.install(engine, timeouts.call_deadline, timeouts.why, ping_if_idle=PING_IF_IDLE_SECONDS)
    event.listen(engine, "handle_error", _standby_is_a_disconnect)
    return engine


def _standby_is_a_disconnect(context: ExceptionContext) -> None:
    """A write refused as read-only came over a connection to a server that is no longer (or
    never was) the primary: the pool drops its connections, and new ones go to the primary."""
    if context.sqlalchemy_exception is not None and is_read_only(context.sqlalchemy_exception):
        context.is_disconnect = True


@dataclass(frozen=True)
class PostgresTimeouts:
    """How long PostgreSQL calls may take, from PQ_DB_STATEMENT_TIMEOUT and PQ_DB_NETWORK_TIMEOUT.

    Both default to a sixth of the lease (2 to 5 s), so that a consumer's call that gets no
    answer fails within lease/3, the interval between renewals: a renewal hung on a dead
    network never delays the next one, and after a partition heals every program is working
    again within seconds, not after the kernel's 15 minutes of TCP retransmissions.
    """

    statement: float  # the server cancels a statement (or ends a transaction left idle) after this
    network: float  # a connection unanswered this long is dead (connect, keepalives, user timeout)

    @classmethod
    def for_settings(cls, settings: Settings) -> PostgresTimeouts:
        derived = min(MAX_DERIVED_TIMEOUT, max(MIN_DERIVED_TIMEOUT, settings.lease_seconds / 6))
        return cls(settings.db_statement_timeout or derived, settings.db_network_timeout or derived)

    @property
    def call_deadline(self) -> float:
        """The longest any call waits: the statement's time, then the network's to say so."""
        return self.statement + self.network

    @property
    def why(self) -> str:
        return f"PQ_DB_STATEMENT_TIMEOUT={self.statement:g}s + PQ_DB_NETWORK_TIMEOUT={self.network:g}s"

    def server_options(self) -> list[str]:
        """statement_timeout, and idle_in_transaction_session_timeout so that a client gone
        silent inside a transaction (partitioned, or stopped) gives back its locks (the seat
        lock) once its own calls have given up."""
        return [
            f"-cstatement_timeout={_ms(self.statement)}",
            f"-cidle_in_transaction_session_timeout={_ms(self.call_deadline)}",
        ]

    def add_tcp_settings(self, url: URL | str) -> URL:
        """The URL with libpq's connect timeout, keepalives and tcp_user_timeout, and with
        target_session_attrs=read-write when it names several hosts, unless it sets them itself.
        In the URL (not the connect arguments), so the consumer's LISTEN connection, made from
        the dialect's connect arguments for the URL, gets them too."""
        tcp: dict[str, str] = {
            "connect_timeout": str(max(2, math.ceil(self.network))),  # libpq's least useful value
            "keepalives": "1",
            "keepalives_idle": str(max(1, int(self.network / 2))),
            "keepalives_interval": str(max(1, int(self.network / 4))),
            "keepalives_count": "3",
            "tcp_user_timeout": str(_ms(self.network)),  # unacknowledged data: the kernel gives up
        }
        assert set(tcp) == set(TCP_SETTINGS)
        parsed = database_url(url) if isinstance(url, str) else url
        several_hosts = "," in str(parsed.query.get("host", ""))
        added = {**tcp, SESSION_ATTRS[0]: SESSION_ATTRS[1]} if several_hosts else tcp
        return parsed.update_query_dict({k: v for k, v in added.items() if k not in parsed.query})


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


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
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The head of pqueue/migrations/versions as Alembic reads it (SCHEMA_REVISION must equal it)."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()
    assert head is not None
    return head


def current_revision(connection: Connection) -> str | None:
    """The revision the database is at, or None when it has no pqueue schema (what Alembic's
    MigrationContext.get_current_revision reads: the one row of its version table in the
    connection's schema)."""
    if not inspect(connection).has_table(VERSION_TABLE):
        return None
    found = connection.execute(select(_VERSIONS.c.version_num)).scalars().all()
    if len(found) > 1:
        raise DatabaseError(f"{VERSION_TABLE} names several revisions: {', '.join(found)}")
    return found[0] if found else None


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
        where = describe_url(engine.url.render_as_string(hide_password=False))
        raise DatabaseError(f"cannot reach the database {where}: {driver_message(exc)}") from exc
    if found != SCHEMA_REVISION:
        raise SchemaOutOfDate(found, SCHEMA_REVISION)


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
                    # A table rebuild (Alembic's batch mode) drops the old table, and with foreign
                    # keys on SQLite's implicit DELETE cascades to every event and delivery. Off
                    # for the migration (it cannot change inside a transaction), checked at its end.
                    driver.execute("PRAGMA foreign_keys = OFF")
                with conn.begin():
                    if engine.dialect.name == "postgresql":
                        _allow_migration_time(engine, conn)
                        lock = text("SELECT pg_advisory_xact_lock(:key)")
                        conn.execute(lock, {"key": seat_lock_key("", "migrate")})
                        if schema:
                            # Only when missing: a standby refuses even CREATE SCHEMA IF NOT EXISTS,
                            # and a schema already at head needs no write (the intake then serves).
                            found = conn.execute(text("SELECT 1 FROM pg_namespace WHERE nspname = :s"), {"s": schema})
                            if found.first() is None:
                                conn.execute(text(f'CREATE SCHEMA "{schema}"'))
                            conn.execute(text(f'SET LOCAL search_path TO "{schema}"'))
                    before = after = current_revision(conn)
                    if before != SCHEMA_REVISION or revision not in ("head", SCHEMA_REVISION):
                        from alembic import command  # only to migrate (see SCHEMA_REVISION)

                        command.upgrade(_alembic_config(conn), revision)
                        after = current_revision(conn)
                        if driver is not None:
                            _check_foreign_keys(conn)
            finally:
                if driver is not None:  # the connection goes back to the pool as it was
                    driver.execute(f"PRAGMA busy_timeout = {usual_timeout}")
                    driver.execute("PRAGMA foreign_keys = ON")
    except SQLAlchemyError as exc:
        problem = translate(exc)
        if isinstance(problem, DatabaseBusy):  # down, or a standby: worth waiting for
            raise problem from exc
        raise DatabaseError(f"migration failed: {driver_message(exc)}") from exc
    return before, after or ""


def _check_foreign_keys(conn: Connection) -> None:
    """Refuse (roll back) a SQLite migration that left a row pointing at a missing job."""
    dangling = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    if dangling:
        raise DatabaseError(f"migration left {len(dangling)} rows whose job is missing, first {tuple(dangling[0])}")


def _allow_migration_time(engine: Engine, conn: Connection) -> None:
    """Lift the usual deadlines for this transaction: waiting for another program's migration,
    or building an index on a big table, takes longer than any queue operation."""
    seconds = POSTGRES_MIGRATION_TIMEOUT_SECONDS
    deadline = deadlines.deadline_of(engine)
    if deadline is not None:
        deadline.extend(conn.connection.dbapi_connection, seconds + deadline.seconds)
    conn.execute(text(f"SET LOCAL statement_timeout = '{seconds}s'"))
    conn.execute(text(f"SET LOCAL idle_in_transaction_session_timeout = '{seconds}s'"))
