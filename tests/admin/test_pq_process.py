"""The installed `pq` console script in a real process: output, exit codes and stderr."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from pqueue import PersistentQ, Status
from tests.admin.cli_support import Jobs
from tests.support import BIN, REPO

# Both backends are covered through CliRunner; here the point is the real process, so SQLite only.
pytestmark = [pytest.mark.process, pytest.mark.parametrize("backend", ["sqlite"], indirect=True)]
PQ = BIN / "pq"
Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def run(db_env: dict[str, str]) -> Run:
    """Run the console script with only the test database's PQ_* variables, under a hard timeout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PQ_")} | db_env

    def pq(*args: str, program: list[str] | None = None, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        command = (program or [str(PQ)]) + list(args)
        return subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, input=stdin, timeout=60)

    return pq


def test_pq_list_and_show__table_and_json(run: Run, jobs: Jobs) -> None:
    manual = jobs.manual({"vendor": "zeta"}, error="Traceback (most recent call last):\nKeyError: 'vendor'")
    waiting = jobs.waiting({"vendor": "acme"})

    listed = run("list")
    shown = run("show", str(manual), "--json")

    assert listed.returncode == 0, listed.stderr
    assert listed.stderr == ""
    rows = [line.split() for line in listed.stdout.splitlines()]
    assert [row[:4] for row in rows[1:]] == [
        [str(waiting), "default", "default", "unprocessed"],
        [str(manual), "default", "default", "manual_intervention"],
    ]
    assert shown.returncode == 0, shown.stderr
    detail = json.loads(shown.stdout)
    assert (detail["id"], detail["status"], detail["error"]) == (
        manual,
        "manual_intervention",
        "Traceback (most recent call last):\nKeyError: 'vendor'",
    )
    assert [e["to_status"] for e in detail["events"]] == ["unprocessed", "under_process", "manual_intervention"]


def test_pq_requeue__moves_the_job_or_explains_the_refusal(run: Run, jobs: Jobs, q: PersistentQ) -> None:
    manual = jobs.manual()
    processed = jobs.processed()

    moved = run("requeue", str(manual))
    refused = run("requeue", str(processed))
    unknown = run("show", "424242")

    assert (moved.returncode, moved.stdout, moved.stderr) == (
        0,
        f"job {manual}: requeued; unprocessed with fresh attempts\n",
        "",
    )
    assert q.get_job(manual).status == Status.UNPROCESSED
    assert refused.returncode == 1 and refused.stdout == ""
    assert refused.stderr == (
        f"error: job {processed} is processed; requeue needs crashed, manual_intervention or cancelled\n"
    )
    assert (unknown.returncode, unknown.stderr) == (1, "error: job 424242 not found\n")


def test_pq_purge__removes_old_jobs_only(run: Run, aged: Callable[[float], Jobs], jobs: Jobs, q: PersistentQ) -> None:
    recent = jobs.processed()
    old = aged(10).processed()

    dry = run("purge", "--older-than", "7d", "--dry-run")
    purged = run("purge", "--older-than", "7d", "--yes")
    bad = run("purge", "--older-than", "a week", "--yes")  # a usage error: exit 2

    assert (dry.returncode, dry.stdout) == (0, "would purge 1 processed jobs finished more than 7d ago\n")
    assert (purged.returncode, purged.stdout) == (0, "purged 1 processed jobs finished more than 7d ago\n")
    assert [job.id for job in q.get_all_items().items] == [recent]
    assert old != recent
    assert bad.returncode == 2 and "'a week' is not a duration" in bad.stderr


def test_pq_missing_database__exit_1_naming_the_file(run: Run, tmp_path: Path) -> None:
    result = run("stats")
    assert result.returncode == 1
    assert result.stderr.startswith(f"error: database {tmp_path / 'var' / 'pqueue.db'} does not exist")
    assert len(result.stderr.splitlines()) == 1 and result.stdout == ""


def test_python_m_admin__is_pq(run: Run) -> None:
    result = run("--help", program=[sys.executable, "-m", "admin"])
    assert result.returncode == 0
    assert "See and steer the pqueue job queue" in result.stdout
