"""What every `pq` command shares: the settings, built once, and the store, opened on first use.

A command takes the store as the role it calls (`insights`, `operations`, `work_queue`,
`partners`), or `store` when it calls more than one, so mypy shows what each command may do."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import cast

import typer

import pqueue
from admin import output
from admin.errors import AdminError
from pqueue import (
    DatabaseMissing,
    Insights,
    Operations,
    Partners,
    PersistentQ,
    PersistentQInterface,
    RunningSystem,
    Settings,
    WorkQueue,
    running_here,
)


@dataclass
class Admin:
    """The settings of this run and, once a command needs it, the open store."""

    settings: Settings
    _store: PersistentQ | None = field(default=None, repr=False)

    def store(self) -> PersistentQ:
        """The queue, opened without migrating: pq never creates a database (only `pq migrate`)."""
        if self._store is None:
            system = running_here(self.settings.resolved_home)
            try:
                self._store = pqueue.connect(settings=self.settings, migrate=False)
            except DatabaseMissing as exc:
                if system is None:
                    raise
                raise AdminError(f"{exc}; {_uses(system)}") from None
            opened = self._store.describe()
            if system is not None and system.database != opened:
                output.note(f"warning: this pq opened {opened}, but {_uses(system)}")
            elif output.console(stderr=True).is_terminal:
                output.note(f"database: {opened}")
        return self._store

    def close(self) -> None:
        """Release the store's connections."""
        if self._store is not None:
            self._store.close()
            self._store = None


def _uses(system: RunningSystem) -> str:
    """Which database the system running in this PQ_HOME uses, and how pq follows it."""
    return (
        f"the pqueue running here (pid {system.pid}) uses {system.database}: "
        "set PQ_DATABASE_URL (or --database-url) to it to see and steer that system"
    )


def admin(ctx: typer.Context) -> Admin:
    """The Admin the root command put on the context."""
    return cast(Admin, ctx.find_root().obj)


def store(ctx: typer.Context) -> PersistentQInterface:
    """The open store of this run, every role."""
    return admin(ctx).store()


def insights(ctx: typer.Context) -> Insights:
    """The store, for a command that only reads."""
    return admin(ctx).store()


def operations(ctx: typer.Context) -> Operations:
    """The store, for a command that only changes jobs or queues."""
    return admin(ctx).store()


def work_queue(ctx: typer.Context) -> WorkQueue:
    """The store, for a command that does a worker's or the intake's part (put, rescue, purge)."""
    return admin(ctx).store()


def partners(ctx: typer.Context) -> Partners:
    """The store, for a command that sees or changes partners and their keys."""
    return admin(ctx).store()
