"""`pq` and the system running in the same PQ_HOME: it never reads another database in silence."""

from __future__ import annotations

import os
from pathlib import Path

from pqueue import PersistentQ
from pqueue.here import forget_running, record_running
from tests.admin.cli_support import Jobs, Pq, sqlite_only


def test_pq__warns_in_one_line_when_the_system_running_here_uses_another_database(
    pq: Pq, jobs: Jobs, q: PersistentQ, db_env: dict[str, str]
) -> None:
    jobs.waiting()
    home = Path(db_env["PQ_HOME"])
    (home / "var" / "run").mkdir(parents=True, exist_ok=True)
    record_running(home, "postgresql+psycopg://pqueue:***@db.internal:5432/newcomer4")  # this process: alive

    result = pq("list")

    assert result.exit_code == 0, result.output
    assert result.stderr == (
        f"warning: this pq opened {q.describe()}, but the pqueue running here (pid "
        f"{os.getpid()}) uses postgresql+psycopg://pqueue:***@db.internal:5432/newcomer4: "
        "set PQ_DATABASE_URL (or --database-url) to it to see and steer that system\n"
    )

    record_running(home, q.describe())
    assert pq("list").stderr == "", "the same database: nothing to say (stderr is not a terminal)"
    forget_running(home)
    assert pq("list").stderr == ""


@sqlite_only  # the point is the database that is not there
def test_pq__a_missing_database_names_the_one_the_system_running_here_uses(pq: Pq, tmp_path: Path) -> None:
    home = tmp_path / "elsewhere"
    (home / "var" / "run").mkdir(parents=True)
    record_running(home, "postgresql+psycopg://pqueue:***@db.internal:5432/newcomer4")

    result = pq("list", env={"PQ_HOME": str(home)})

    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1 and result.stderr.startswith(
        f"error: database {home}/var/pqueue.db does not exist"
    )
    assert (
        "the pqueue running here (pid" in result.stderr and "uses postgresql+psycopg://pqueue:***@db" in result.stderr
    )
