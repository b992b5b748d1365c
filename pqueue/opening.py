"""Opening the queue: connect() and migrate(), and what every long-running program does at start
(log the same way, open the database patiently)."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable

from pqueue.database import check_schema, ensure_exists, make_engine, upgrade
from pqueue.errors import DatabaseError, DatabaseMissing, SchemaOutOfDate
from pqueue.settings import Settings, load_settings
from pqueue.store import PersistentQ

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


def setup_logging(settings: Settings) -> None:
    """One line per event on stdout, for Supervisor's log files."""
    logging.basicConfig(stream=sys.stdout, level=settings.log_level.upper(), format=LOG_FORMAT, force=True)


def open_with_retry(
    settings: Settings,
    *,
    migrate: bool,
    program: str,
    should_stop: Callable[[], bool] = lambda: False,
    max_delay: float = 30.0,
) -> PersistentQ | None:
    """Connect (and migrate, for the producer and consumer), retrying with backoff while the
    database is down, so an outage does not exhaust Supervisor's start retries.

    Returns None only when should_stop() became true while waiting. A missing database (for
    programs that never create one) or a schema from another version is not retried.
    """
    log = logging.getLogger(program)
    delay = 0.5
    while not should_stop():
        try:
            store = connect(settings=settings, migrate=migrate)
        except (DatabaseMissing, SchemaOutOfDate):
            raise
        except DatabaseError as exc:
            log.warning("database not ready (%s); retrying in %.1fs", exc, delay)
        except Exception as exc:  # noqa: BLE001 - driver errors on connect: retry them all
            log.warning("database not ready (%s: %s); retrying in %.1fs", type(exc).__name__, exc, delay)
        else:
            log.info("database %s opened", store.describe())
            return store
        time.sleep(delay)
        delay = min(max_delay, delay * 2)
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
            upgrade(engine, settings.db_schema)
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
