"""What every `pq` command shares: the settings, built once, and the store, opened on first use."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import cast

import typer

import pqueue
from pqueue import PersistentQ, Settings


@dataclass
class Admin:
    """The settings of this run and, once a command needs it, the open store."""

    settings: Settings
    _store: PersistentQ | None = field(default=None, repr=False)

    def store(self) -> PersistentQ:
        """The queue, opened without migrating: pq never creates a database (only `pq migrate`)."""
        if self._store is None:
            self._store = pqueue.connect(settings=self.settings, migrate=False)
        return self._store

    def close(self) -> None:
        """Release the store's connections."""
        if self._store is not None:
            self._store.close()
            self._store = None


def admin(ctx: typer.Context) -> Admin:
    """The Admin the root command put on the context."""
    return cast(Admin, ctx.find_root().obj)


def store(ctx: typer.Context) -> PersistentQ:
    """The open store of this run."""
    return admin(ctx).store()
