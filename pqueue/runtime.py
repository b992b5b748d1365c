"""What every long-running program does at start: log the same way, open the database patiently."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable

from pqueue.errors import DatabaseError, DatabaseMissing, SchemaOutOfDate
from pqueue.settings import Settings
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
    from pqueue import connect

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
