"""Opening the queue: connect() and migrate(), and what every long-running program does at start
(log the same way, open the database patiently)."""

from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import Callable
from typing import TypeVar

from pqueue import backoff
from pqueue.database import check_schema, describe_url, ensure_exists, make_engine, upgrade
from pqueue.errors import (
    DatabaseError,
    DatabaseMissing,
    DatabaseReadOnly,
    SchemaOutOfDate,
    SettingsError,
    driver_message,
)
from pqueue.models import Replication
from pqueue.settings import Settings, load_settings
from pqueue.store import PersistentQ

log = logging.getLogger("pqueue")
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
LOG_EVERY = 10.0  # seconds between two log lines about the same wait for the database
RETRY_FIRST_SECONDS = 0.25
RETRY_MAX_SECONDS = 2.0  # a promoted standby is found within this much of taking writes

T = TypeVar("T")


def setup_logging(settings: Settings) -> None:
    """One line per event on stdout, for Supervisor's log files."""
    logging.basicConfig(stream=sys.stdout, level=settings.log_level.upper(), format=LOG_FORMAT, force=True)
    # Alembic says "Context impl PostgresqlImpl" at every open, a waiting program every few
    # seconds; connect() logs the upgrades it makes itself.
    logging.getLogger("alembic.runtime.migration").setLevel(logging.WARNING)


def open_with_retry(
    settings: Settings,
    *,
    migrate: bool,
    program: str,
    should_stop: Callable[[], bool] = lambda: False,
    max_delay: float = RETRY_MAX_SECONDS,
    writable: bool = True,
) -> PersistentQ | None:
    """Connect (and migrate, for the producer and consumer) to a database that takes writes,
    retrying while it is down or only a standby answers, so an outage or a failover does not
    exhaust Supervisor's start retries. Says why once, then every LOG_EVERY seconds.

    With writable=False (the intake) a database that answers but takes no writes yet is opened,
    with a warning: the program can then say why it refuses (/healthz 503 names the standby).

    Returns None only when should_stop() became true while waiting. A missing database (for
    programs that never create one), a schema from another version or a URL pqueue cannot use
    (a SettingsError) is not retried.
    """
    log = logging.getLogger(program)

    def open_writable() -> tuple[PersistentQ, Replication]:
        store = connect(settings=settings, migrate=migrate)
        try:
            try:
                store.ping()  # a standby answers, but takes no writes
            except DatabaseReadOnly as exc:
                if writable:
                    raise
                log.warning("database %s opened, but %s", store.describe(), exc)
            return store, store.replication()
        except Exception:
            store.close()
            raise

    opened = patiently(open_writable, what="database not ready", log=log, should_stop=should_stop, max_delay=max_delay)
    if opened is None:
        return None
    store, replication = opened
    log.log(
        logging.WARNING if replication.mode == "asynchronous" or not settings.synchronous_commit else logging.INFO,
        "database %s opened; replication: %s",
        store.describe(),
        replication.describe(),
    )
    return store


def patiently(
    call: Callable[[], T],
    *,
    what: str,
    log: logging.Logger,
    should_stop: Callable[[], bool] = lambda: False,
    max_delay: float = RETRY_MAX_SECONDS,
) -> T | None:
    """call() until it stops failing for want of a database; None if should_stop() came first.

    A database that is down, unreachable or read-only is waited for, with backoff up to
    max_delay (short: a promoted standby should be used within seconds); the first failure is
    logged at once, later ones once per LOG_EVERY seconds. What waiting cannot mend (a bad
    setting, a missing database, a schema from another version) is raised.
    """
    failures, logged_at = 0, -math.inf
    while not should_stop():
        try:
            return call()
        except (SettingsError, DatabaseMissing, SchemaOutOfDate):
            raise
        except Exception as exc:  # noqa: BLE001 - driver errors on connect: retry them all
            failures += 1
            now = time.monotonic()
            if now - logged_at >= LOG_EVERY:
                reason = str(exc) if isinstance(exc, DatabaseError) else f"{type(exc).__name__}: {driver_message(exc)}"
                tries = f" ({failures} tries)" if failures > 1 else ""
                log.warning("%s%s: %s; retrying every %.1fs at most", what, tries, reason, max_delay)
                logged_at = now
        time.sleep(backoff.exponential(RETRY_FIRST_SECONDS, failures, max_delay))
    return None


def connect(url: str | None = None, *, settings: Settings | None = None, migrate: bool = True) -> PersistentQ:
    """Open the queue, creating the database or bringing its schema up to date under a lock, as
    a library user expects of sqlite3 or huey.

    Programs that must never create a database (`pq`, the dashboard) pass migrate=False: a
    missing SQLite file then raises DatabaseMissing and a schema at another revision raises
    SchemaOutOfDate, both telling the operator to run `pq migrate`.
    """
    settings = settings or load_settings()
    url = url or settings.resolved_database_url
    if not migrate:
        ensure_exists(url)
    engine = make_engine(url, settings)
    try:
        if migrate:
            before, after = upgrade(engine, settings.db_schema)
            if before != after:
                log.info("schema of %s upgraded from %s to %s", describe_url(url), before or "nothing", after)
        else:
            check_schema(engine)
    except Exception:
        engine.dispose()
        raise
    return PersistentQ(engine, settings)


def migrate(url: str | None = None, *, settings: Settings | None = None) -> tuple[str | None, str]:
    """Create or upgrade the schema; returns (revision before, revision after)."""
    settings = settings or load_settings()
    engine = make_engine(url or settings.resolved_database_url, settings)
    try:
        return upgrade(engine, settings.db_schema)
    finally:
        engine.dispose()
