"""Which database the system running in a PQ_HOME uses, so that `pq` run in the same place can
tell when it opened another one (an operator who started the system with PQ_DATABASE_URL set
and runs `pq` in a terminal without it).

`make run` (pq-run) writes var/run/system.json when it starts the programs and removes it when
they have stopped; the database is named as programs log it (no password).
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

RECORD = Path("var") / "run" / "system.json"


@dataclass(frozen=True)
class RunningSystem:
    """The system started in a PQ_HOME: the process that started it and the database it uses."""

    pid: int
    database: str


def record_running(home: Path, database: str) -> Path:
    """Say, for other programs in this PQ_HOME, which database the system started here uses."""
    path = home / RECORD
    path.write_text(json.dumps({"pid": os.getpid(), "database": database}) + "\n")
    return path


def running_here(home: Path) -> RunningSystem | None:
    """The system running in this PQ_HOME, or None (none started, or its starter is gone)."""
    try:
        data = json.loads((home / RECORD).read_text())
        system = RunningSystem(int(data["pid"]), str(data["database"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    try:
        os.kill(system.pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # alive, another user's
    return system


def forget_running(home: Path) -> None:
    with contextlib.suppress(OSError):
        (home / RECORD).unlink()
