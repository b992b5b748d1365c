"""The persistent queue in the words of its first design: `persistentQ({"name": ..., "type": ...})`
with put_item, get_item() -> (id, item), update_status(id, status), update_q, get_all_items()
-> [dict] and purge(duration, status=...), and the Producer, Consumer and Manager roles.

A thin layer: each call is one or two calls of the real library (PersistentQ), so leases,
fencing, the licence, retries and the event log work exactly as for every other program. Its
status words are the library's, which came from that design: unprocessed, under_process,
processed, crashed, manual_intervention (and cancelled).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from types import EllipsisType
from typing import Any

from pqueue.errors import InvalidInput, InvalidTransition
from pqueue.models import Job
from pqueue.opening import connect
from pqueue.policy import lease_margin
from pqueue.states import Status
from pqueue.store import PersistentQ
from pqueue.validation import duration_seconds

Config = Mapping[str, Any] | EllipsisType | set[Any] | None
KEYS = ("name", "type", "url")
TYPES = ("sqlite", "postgresql")
PAGE = 1000

_last_opened: dict[str, Any] | None = None  # what `persistentQ(...)` means: the queue opened before


class persistentQ:  # noqa: N801 - the name the design's code calls
    """A queue opened by `{"name": FILE, "type": "sqlite"}`, `{"name": DATABASE, "type":
    "postgresql"}` or `{"url": SQLALCHEMY_URL}`, created if it does not exist.

    `persistentQ(...)` or `persistentQ({...})`, as the design writes it for "the same as above",
    opens the queue this process opened last; with nothing opened yet (or `persistentQ()`), the
    default one: PQ_DATABASE_URL, else var/pqueue.db under PQ_HOME.
    """

    def __init__(self, config: Config = None) -> None:
        name, kind, url = _resolve(config)
        self.db_connect(name, kind, url=url)

    def db_connect(self, db_name: str | None, db_type: str = "sqlite", *, url: str | None = None) -> None:
        """Open (or create) the queue: a SQLite file named db_name, or a PostgreSQL database."""
        global _last_opened
        if getattr(self, "store", None) is not None:
            self.store.close()
        self.dbname, self.dbtype = db_name, db_type
        self.store: PersistentQ = connect(url or _url(db_name, db_type))
        self.db_name, self.db_info = db_name, self.store.describe()
        _last_opened = {"name": db_name, "type": db_type, "url": url}

    def put_item(self, item: Any) -> int:
        """Store an item (any JSON value but None), status unprocessed, submission_count 0; its id."""
        if item is None:
            raise InvalidInput("item", "must not be None: get_item() answers (None, None) when nothing waits")
        return self.store.put_item(item)

    def get_item(self) -> tuple[int, Any] | tuple[None, None]:
        """The first unprocessed item as (id, item), now under_process; (None, None) when none waits."""
        job = self.store.get_item()
        return (None, None) if job is None else (job.id, job.payload)

    def update_status(self, item_id: int, status: str) -> str:
        """Record the outcome of an item this handle got: processed, or crashed (unprocessed again
        while submission_count < max attempts, else manual_intervention). Returns the new status."""
        return str(self.store.update_status(item_id, status).status)

    def update_q(self, item_id: int, status: str) -> str:
        """The manager's move of an item: `crashed` for an orphan (under_process, its consumer
        silent past its lease: back to the queue, or manual_intervention out of attempts),
        `unprocessed` to put a crashed, failed or cancelled item back with fresh attempts,
        `manual_intervention` or `cancelled` to stop it. Returns the new status."""
        if status == Status.CRASHED:
            return self._rescue(item_id)
        if status == Status.UNPROCESSED:
            return str(self.store.requeue(item_id, actor="manager").status)
        if status == Status.MANUAL_INTERVENTION:
            return str(self.store.fail(item_id, "moved by the manager", actor="manager").status)
        if status == Status.CANCELLED:
            return str(self.store.cancel(item_id, actor="manager").status)
        raise InvalidInput(
            "status", f"{status!r}: the manager moves an item to crashed, unprocessed, manual_intervention or cancelled"
        )

    def _rescue(self, item_id: int) -> str:
        job = self.store.get_job(item_id)
        if job.status == Status.UNDER_PROCESS:
            self.store.rescue_expired(actor="manager")
            job = self.store.get_job(item_id)
        if job.status == Status.UNDER_PROCESS:
            margin = lease_margin(job.lease_seconds or self.store.settings.lease_seconds)
            until = f"{job.lease_expires_at:%Y-%m-%d %H:%M:%S}Z plus a {margin:g}s margin"
            raise InvalidTransition(item_id, job.status, "update_q", f"an orphan, and its lease runs until {until}")
        if job.status not in (Status.CRASHED, Status.MANUAL_INTERVENTION):
            raise InvalidTransition(item_id, job.status, "update_q", "under_process (an orphan) or crashed")
        return str(job.status)

    def get_all_items(
        self, status: str | Sequence[str] | None = None, older_than: float | timedelta | str | None = None
    ) -> list[dict[str, Any]]:
        """Every item, oldest first, as a dict (id, item, status, submission_count, timestamp, …);
        only those in `status` and stored more than `older_than` ago, when given."""
        cutoff = None
        if older_than is not None:
            cutoff = self.store.now() - timedelta(seconds=duration_seconds("older_than", older_than))
        items: list[dict[str, Any]] = []
        cursor = None
        while True:
            page = self.store.get_all_items(status=status, limit=PAGE, cursor=cursor, oldest_first=True)
            items.extend(_as_dict(job) for job in page.items if cutoff is None or job.created_at < cutoff)
            if page.next_cursor is None:
                return items
            cursor = page.next_cursor

    def purge(self, duration: float | timedelta | str, status: str | Sequence[str] = Status.PROCESSED) -> int:
        """Delete the items in `status` finished more than `duration` ago (seconds, a timedelta or
        '7d'); how many. Running items are never purged."""
        seconds = duration_seconds("duration", duration)
        return self.store.purge(seconds, [status] if isinstance(status, str) else list(status))

    def close(self) -> None:
        self.store.close()


class Producer(persistentQ):
    """Puts items (put_item)."""


class Consumer(persistentQ):
    """Gets items and records their outcome (get_item, update_status)."""


class Manager(persistentQ):
    """Moves lingering items (update_status here is the manager's move, update_q)."""

    terminate_manager = False

    def update_status(self, item_id: int, status: str) -> str:
        return self.update_q(item_id, status)


def _resolve(config: Config) -> tuple[str | None, str, str | None]:
    """(name, type, url) of a configuration; InvalidInput naming what is wrong."""
    if config is ... or config == {...}:
        config = _last_opened or {}
    if config is None:
        config = {}
    if not isinstance(config, Mapping):
        raise InvalidInput("config", f'expected {{"name": ..., "type": "sqlite"}}, got {config!r}')
    unknown = sorted(set(config) - set(KEYS))
    if unknown:
        raise InvalidInput("config", f"unknown key {unknown[0]!r}; use {', '.join(KEYS)}")
    name, kind, url = config.get("name"), config.get("type") or "sqlite", config.get("url")
    kind = {"postgres": "postgresql"}.get(kind, kind)
    if kind not in TYPES:
        raise InvalidInput("type", f"{kind!r} is not a database type; use sqlite or postgresql")
    for key, value in (("name", name), ("url", url)):
        if value is not None and (not isinstance(value, str) or not value):
            raise InvalidInput(key, f"must be a non-empty string, got {value!r}")
    return name, kind, url


def _url(name: str | None, kind: str) -> str | None:
    """A SQLite file named `name` (as sqlite3.connect names it), or the PostgreSQL database `name`
    on the local server; None (the default queue) without a name."""
    if name is None:
        return None
    if kind == "sqlite":
        return f"sqlite:///{Path(name).expanduser().resolve()}"
    return f"postgresql+psycopg:///{name}"


def _as_dict(job: Job) -> dict[str, Any]:
    return {
        "id": job.id,
        "item": job.payload,
        "status": str(job.status),
        "submission_count": job.attempts,
        "timestamp": job.created_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        "result": job.result,
        "error": job.error,
        "queue": job.queue,
    }
