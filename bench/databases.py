"""The databases a run uses: SQLite files under the work directory, PostgreSQL databases the
harness creates and drops."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import make_url

import pqueue
from pqueue import Settings


@dataclass(frozen=True)
class Target:
    """One fresh database for one measurement."""

    backend: str
    url: str  # SQLAlchemy URL
    home: Path
    path: Path | None = None  # the SQLite file
    conninfo: str | None = None  # libpq URL, for psycopg, asyncpg and the peers

    def settings(self, **overrides: Any) -> Settings:
        values: dict[str, Any] = {"home": self.home, "database_url": self.url, "log_level": "WARNING"}
        values.update(overrides)
        return pqueue.load_settings(**values)

    def env(self, **extra: str) -> dict[str, str]:
        """PQ_* variables naming this database, for a program started as a subprocess."""
        values = {"PQ_HOME": str(self.home), "PQ_DATABASE_URL": self.url, "PQ_LOG_LEVEL": "WARNING"}
        values.update(extra)
        return values


class Databases:
    """Hands out fresh databases and drops every PostgreSQL database it created on close()."""

    def __init__(self, server_url: str, workdir: Path) -> None:
        self.server_url = server_url
        self.workdir = workdir
        self.prefix = f"pqbench_{secrets.token_hex(3)}"
        self._created: list[str] = []
        self._count = 0

    def fresh(self, backend: str, label: str) -> Target:
        self._count += 1
        name = f"{label}_{self._count}"
        home = self.workdir / name
        home.mkdir(parents=True, exist_ok=True)
        if backend == "sqlite":
            path = home / "var" / "pqueue.db"
            path.parent.mkdir(parents=True, exist_ok=True)
            return Target("sqlite", f"sqlite:///{path}", home, path=path)
        database = f"{self.prefix}_{self._count}"
        with psycopg.connect(self.server_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{database}"')
        self._created.append(database)
        conninfo = make_url(self.server_url).set(database=database).render_as_string(hide_password=False)
        url = make_url(conninfo).set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
        return Target("postgresql", url, home, conninfo=conninfo)

    def drop(self, target: Target) -> None:
        """Drop one database now (big prefilled ones should not wait for the end)."""
        if target.conninfo is None:
            return
        database = make_url(target.conninfo).database
        if database in self._created:
            self._created.remove(database)
            self._drop(str(database))

    def _drop(self, database: str) -> None:
        with psycopg.connect(self.server_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')

    def close(self) -> None:
        for database in list(self._created):
            self._drop(database)
        self._created.clear()
