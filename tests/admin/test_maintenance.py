"""`pq purge`, `pq migrate`, `pq export` and `pq backup`."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from pqueue import JobNotFound, PersistentQ, Status
from tests.admin.cli_support import Jobs, Pq, as_json, one_error_line, sqlite_only


@pytest.fixture
def history(aged: Callable[[float], Jobs], jobs: Jobs) -> dict[str, int]:
    """Jobs finished ten days ago in four states, one processed today and one waiting."""
    old = aged(10)
    made = {"new processed": jobs.processed()}
    made["old processed"] = old.processed()
    made["old manual"] = old.manual()
    made["old cancelled"] = old.cancelled()
    made["old crashed"] = old.crashed()  # claimable again in real time: made last
    made["waiting"] = jobs.waiting()
    return made


def remaining(q: PersistentQ, history: dict[str, int]) -> set[str]:
    """Which of the history's jobs are still in the database."""
    present = {job.id for job in q.get_all_items(limit=100).items}
    return {name for name, job_id in history.items() if job_id in present}


def test_purge__only_the_chosen_statuses_older_than_the_cut_off_go(
    pq: Pq, q: PersistentQ, history: dict[str, int]
) -> None:
    result = pq("purge", "--older-than", "7d", "--status", "processed", "--status", "manual_intervention", "--yes")

    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "purged 2 processed or manual_intervention jobs finished more than 7d ago"
    assert remaining(q, history) == {"old cancelled", "old crashed", "new processed", "waiting"}
    with pytest.raises(JobNotFound):
        q.events(history["old processed"])


def test_purge__dry_run_counts_and_changes_nothing(pq: Pq, q: PersistentQ, history: dict[str, int]) -> None:
    before = remaining(q, history)

    result = pq("purge", "--older-than", "7d", "--status", "processed", "--status", "cancelled", "--dry-run", "--json")

    assert as_json(result) == {
        "dry_run": True,
        "older_than_seconds": 7 * 86_400,
        "statuses": ["processed", "cancelled"],
        "matched": 2,
        "purged": 0,
    }
    assert remaining(q, history) == before == set(history)


@sqlite_only
def test_purge__default_status_is_processed_and_the_cut_off_counts(
    pq: Pq, q: PersistentQ, history: dict[str, int]
) -> None:
    assert as_json(pq("purge", "--older-than", "11d", "--yes", "--json"))["purged"] == 0
    assert as_json(pq("purge", "--older-than", "9d", "--yes", "--json"))["purged"] == 1
    assert remaining(q, history) == set(history) - {"old processed"}


@sqlite_only
def test_purge__asks_first_and_no_keeps_everything(pq: Pq, q: PersistentQ, history: dict[str, int]) -> None:
    declined = pq("purge", "--older-than", "7d", input="n\n")
    assert declined.exit_code == 1
    assert "Purge 1 processed jobs finished more than 7d ago?" in declined.stderr
    assert "nothing was purged" in declined.stderr
    assert remaining(q, history) == set(history)

    accepted = pq("purge", "--older-than", "7d", input="y\n")
    assert accepted.exit_code == 0 and "purged 1 processed jobs" in accepted.stdout
    assert "old processed" not in remaining(q, history)


@sqlite_only
def test_purge__refuses_under_process_and_bad_durations(pq: Pq, q: PersistentQ, history: dict[str, int]) -> None:
    running = pq("purge", "--older-than", "1d", "--status", "under_process", "--yes")
    assert running.exit_code == 2 and "under_process jobs are running and are never purged" in running.stderr
    for bad in ("7", "seven days", "-1d", "7y"):
        result = pq("purge", "--older-than", bad, "--yes")
        assert result.exit_code == 2, bad
        assert f"{bad!r} is not a duration" in result.stderr
    missing = pq("purge", "--yes")
    assert missing.exit_code == 2 and "--older-than" in missing.stderr
    assert remaining(q, history) == set(history)


def test_migrate__creates_then_has_nothing_to_do(pq: Pq, db_env: dict[str, str]) -> None:
    first = pq("migrate")
    assert first.exit_code == 0, first.output
    assert first.stdout.startswith("created the schema of ")

    again = as_json(pq("migrate", "--json"))
    assert again["before"] == again["after"] and again["after"]
    assert again["database"] in (db_env["PQ_DATABASE_URL"].removeprefix("sqlite:///"), db_env["PQ_DATABASE_URL"])
    assert as_json(pq("list", "--json")) == []


@sqlite_only
def test_export__jsonl_to_stdout_oldest_first(pq: Pq, jobs: Jobs) -> None:
    ids = [jobs.processed({"n": 1}), jobs.manual({"n": 2}, error="Traceback\nValueError: x"), jobs.waiting({"n": 3})]

    result = pq("export")

    assert result.exit_code == 0, result.output
    exported = [json.loads(line) for line in result.stdout.splitlines()]
    assert [job["id"] for job in exported] == ids
    assert exported == list(reversed(as_json(pq("list", "--json")))), "the same job objects as pq list --json"


@sqlite_only
def test_export__csv_file_with_status_filter(pq: Pq, jobs: Jobs, tmp_path: Path) -> None:
    processed = jobs.processed({"vendor": "acme"}, result={"outliers": [3]})
    jobs.waiting()
    target = tmp_path / "out.csv"

    result = pq("export", "--status", "processed", "--format", "csv", "-o", str(target))

    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"exported 1 jobs to {target}"
    rows = list(csv.DictReader(io.StringIO(target.read_text())))
    assert len(rows) == 1
    row = rows[0]
    assert (row["id"], row["status"], row["queue"], row["attempts"]) == (str(processed), "processed", "default", "1")
    assert json.loads(row["payload"]) == {"vendor": "acme"} and json.loads(row["result"]) == {"outliers": [3]}
    assert row["error"] == "" and row["finished_at"].endswith("Z") and row["partner"] == "default"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out.csv")] == [], "no temporary file left"


@sqlite_only
def test_export__unwritable_target_is_one_line(pq: Pq, jobs: Jobs, tmp_path: Path) -> None:
    jobs.waiting()
    result = pq("export", "-o", str(tmp_path / "no" / "such" / "dir.jsonl"))
    assert result.exit_code == 1
    assert one_error_line(result).startswith(f"error: cannot write {tmp_path / 'no' / 'such' / 'dir.jsonl'}")


def test_backup__sqlite_copy_or_pg_dump_advice(
    pq: Pq, jobs: Jobs, backend: str, tmp_path: Path, db_env: dict[str, str]
) -> None:
    job_id = jobs.manual()
    target = tmp_path / "copy.db"

    result = pq("backup", str(target))

    if backend == "postgresql":
        assert result.exit_code == 1
        assert one_error_line(result) == "error: pq backup copies SQLite files; for PostgreSQL use pg_dump"
        return
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().endswith(f"to {target}")
    copy_env = {**db_env, "PQ_DATABASE_URL": f"sqlite:///{target}"}
    assert [job["id"] for job in as_json(pq("list", "--json", env=copy_env))] == [job_id]
    again = pq("backup", str(target))
    assert again.exit_code == 1 and "already exists" in one_error_line(again)


@sqlite_only
def test_status_counts_after_purge_match(pq: Pq, q: PersistentQ, history: dict[str, int]) -> None:
    pq("purge", "--older-than", "7d", "--status", "crashed", "--yes")
    assert q.count_items(status=Status.CRASHED) == 0
    assert q.count_items() == len(history) - 1
