"""`pq list`, `pq show` and `pq enqueue` on a real database."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from pqueue import PersistentQ, Status
from tests.admin.cli_support import Jobs, Pq, as_json, one_error_line, sqlite_only

TRACEBACK = "Traceback (most recent call last):\n  File \"iqr.py\", line 3, in run\nKeyError: 'vendor'"
JOB_FIELDS = [
    "id",
    "queue",
    "status",
    "priority",
    "attempts",
    "max_attempts",
    "lease_id",
    "worker_id",
    "created_at",
    "run_after",
    "started_at",
    "finished_at",
    "lease_expires_at",
    "payload",
    "result",
    "error",
    "operator_reason",
    "callback_url",
    "idempotency_key",
    "stop_request",
    "stop_reason",
    "partner",
    "agent_status",
]


def utc(text: str) -> datetime:
    """An ISO 8601 UTC time as pq writes it (ending in Z)."""
    assert text.endswith("Z"), text
    return datetime.fromisoformat(text)


def test_list__table_shows_each_job_with_status_attempts_error_and_payload(pq: Pq, jobs: Jobs) -> None:
    manual = jobs.manual({"vendor": "zeta"}, error=TRACEBACK)
    waiting = jobs.waiting({"vendor": "acme", "readings": [1, 2, 3]})

    result = pq("list")

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    columns = ["id", "queue", "partner", "status", "pri", "attempts", "age", "last", "error", "payload"]
    assert lines[0].split() == columns
    rows = {line.split()[0]: line for line in lines[1:]}
    assert list(rows) == [str(waiting), str(manual)], "newest first"
    assert "manual_intervention" in rows[str(manual)] and "1/1" in rows[str(manual)]
    assert "KeyError: 'vendor'" in rows[str(manual)], "the last line of the error"
    assert '{"vendor":"acme","readings":[1,2,3]}' in rows[str(waiting)]
    assert "\x1b[" not in result.stdout, "no colour codes when piped"


def test_list__json_is_an_array_of_jobs_field_by_field(pq: Pq, jobs: Jobs, q: PersistentQ) -> None:
    job_id = jobs.processed({"x": 1}, result={"outliers": []}, priority=3, queue="reports")
    job = q.get_job(job_id)

    listed = as_json(pq("list", "--json"))

    assert isinstance(listed, list) and len(listed) == 1
    item = listed[0]
    assert list(item) == JOB_FIELDS
    assert item["id"] == job_id
    assert item["queue"] == "reports"
    assert item["status"] == "processed"
    assert item["priority"] == 3
    assert (item["attempts"], item["max_attempts"], item["lease_id"]) == (1, 3, 1)
    assert item["worker_id"] == "worker-1"
    assert item["payload"] == {"x": 1}
    assert item["result"] == {"outliers": []}
    assert item["error"] is None and item["callback_url"] is None and item["stop_request"] is None
    assert utc(item["created_at"]) == job.created_at.replace(microsecond=job.created_at.microsecond // 1000 * 1000)
    assert utc(item["finished_at"]) >= utc(item["started_at"]) >= utc(item["created_at"])
    assert item["lease_expires_at"] is None


def test_list__filters_by_status_queue_and_limit_and_orders_oldest_first(pq: Pq, jobs: Jobs) -> None:
    crashed = jobs.crashed(queue="a")
    first = jobs.waiting(queue="a")
    other_queue = jobs.waiting(queue="b")
    last = jobs.waiting(queue="a")

    def ids(*args: str) -> list[int]:
        return [job["id"] for job in as_json(pq("list", "--json", *args))]

    assert ids("--status", "unprocessed") == [last, other_queue, first]
    assert ids("--status", "unprocessed", "--status", "crashed", "--queue", "a") == [last, first, crashed]
    assert ids("--oldest-first", "--limit", "2") == [crashed, first]
    assert ids("--queue", "nowhere") == []


@sqlite_only
def test_list__since_keeps_recent_jobs(pq: Pq, jobs: Jobs, aged: Callable[[float], Jobs]) -> None:
    old = aged(2).waiting()
    recent = jobs.waiting()
    assert [job["id"] for job in as_json(pq("list", "--json", "--since", "1d"))] == [recent]
    assert [job["id"] for job in as_json(pq("list", "--json", "--since", "3d"))] == [recent, old]


@sqlite_only
def test_list__more_jobs_than_limit_says_how_many_on_stderr(pq: Pq, jobs: Jobs) -> None:
    for _ in range(3):
        jobs.waiting()
    result = pq("list", "--limit", "2")
    assert result.exit_code == 0
    assert len(result.stdout.splitlines()) == 3, "header and two rows"
    assert "showing 2 of 3 jobs" in result.stderr


@sqlite_only
def test_list__bad_duration_is_a_usage_error(pq: Pq, jobs: Jobs) -> None:
    result = pq("list", "--since", "ten minutes")
    assert result.exit_code == 2
    assert "'ten minutes' is not a duration" in result.stderr


def test_show__json_has_job_delivery_and_timeline(pq: Pq, jobs: Jobs, q: PersistentQ) -> None:
    job_id = jobs.manual({"vendor": "zeta"}, error=TRACEBACK, callback_url="http://127.0.0.1:9/hook")

    shown = as_json(pq("show", str(job_id), "--json"))

    assert list(shown) == [*JOB_FIELDS, "delivery", "events"]
    assert shown["id"] == job_id
    assert shown["status"] == "manual_intervention"
    assert shown["error"] == TRACEBACK, "the whole traceback"
    assert shown["payload"] == {"vendor": "zeta"}
    delivery = shown["delivery"]
    assert delivery["url"] == "http://127.0.0.1:9/hook"
    assert delivery["status"] == "pending" and delivery["attempts"] == 0
    assert delivery["idempotency_key"] == f"{job_id}-1"
    assert [(e["from_status"], e["to_status"], e["actor"]) for e in shown["events"]] == [
        (None, "unprocessed", "producer"),
        ("unprocessed", "under_process", "worker-1"),
        ("under_process", "manual_intervention", "worker-1"),
    ]
    assert shown["events"][-1]["message"] == "KeyError: 'vendor'"
    times = [utc(e["at"]) for e in shown["events"]]
    assert times == sorted(times)


@sqlite_only
def test_show__table_has_fields_payload_error_and_timeline(pq: Pq, jobs: Jobs) -> None:
    job_id = jobs.manual({"vendor": "zeta"}, error=TRACEBACK)

    result = pq("show", str(job_id))

    assert result.exit_code == 0, result.output
    out = result.stdout
    assert f"job {job_id}" in out
    assert "manual_intervention" in out and "1 of 1" in out
    assert '"vendor": "zeta"' in out, "payload pretty-printed"
    assert 'File "iqr.py", line 3, in run' in out, "the traceback, not only its last line"
    timeline = [line.split() for line in out[out.index("timeline:") :].splitlines()[2:]]
    assert [row[2:5] for row in timeline] == [
        ["-", "unprocessed", "producer"],
        ["unprocessed", "under_process", "worker-1"],
        ["under_process", "manual_intervention", "worker-1"],
    ]


@sqlite_only
def test_show__unknown_id_is_one_line_and_exit_1(pq: Pq, jobs: Jobs) -> None:
    jobs.waiting()
    result = pq("show", "999")
    assert result.exit_code == 1
    assert one_error_line(result) == "error: job 999 not found"
    assert result.stdout == ""


def test_enqueue__prints_the_id_of_the_stored_job(pq: Pq, q: PersistentQ) -> None:
    result = pq("enqueue", '{"vendor": "acme"}', "--priority", "-1", "--queue", "reports")
    assert result.exit_code == 0, result.output
    job = q.get_job(int(result.stdout))
    assert (job.payload, job.priority, job.queue, job.status) == ({"vendor": "acme"}, -1, "reports", Status.UNPROCESSED)
    assert [(e.to_status, e.actor) for e in q.events(job.id)] == [(Status.UNPROCESSED, "admin")]


@sqlite_only
def test_enqueue__reads_a_file_or_stdin(pq: Pq, q: PersistentQ, tmp_path: Path) -> None:
    (tmp_path / "job.json").write_text("[1, 2, 3]")
    from_file = pq("enqueue", f"@{tmp_path / 'job.json'}")
    from_stdin = pq("enqueue", "-", "--json", input='{"from": "stdin"}')
    assert q.get_job(int(from_file.stdout)).payload == [1, 2, 3]
    assert q.get_job(as_json(from_stdin)["id"]).payload == {"from": "stdin"}


@sqlite_only
def test_enqueue__same_idempotency_key_stores_nothing_new(pq: Pq, q: PersistentQ) -> None:
    first = as_json(pq("enqueue", "{}", "--idempotency-key", "order-7", "--json"))
    again = pq("enqueue", "{}", "--idempotency-key", "order-7")
    assert first["created"] is True
    assert int(again.stdout) == first["id"]
    assert "already has this idempotency key" in again.stderr
    assert q.count_items() == 1


@sqlite_only
def test_enqueue__bad_json_is_refused_and_stores_nothing(pq: Pq, q: PersistentQ) -> None:
    result = pq("enqueue", "{vendor: acme}")
    assert result.exit_code == 2
    assert "the payload is not JSON" in result.stderr
    assert q.count_items() == 0


@sqlite_only
def test_enqueue__bad_callback_url_or_missing_file_is_refused(pq: Pq, q: PersistentQ, tmp_path: Path) -> None:
    bad_url = pq("enqueue", "{}", "--callback-url", "ftp://example.org/x")
    missing = pq("enqueue", f"@{tmp_path / 'nope.json'}")
    assert bad_url.exit_code == 2 and "is not an http or https URL" in bad_url.stderr
    assert missing.exit_code == 2 and f"cannot read {tmp_path / 'nope.json'}" in missing.stderr
    assert q.count_items() == 0


def test_show__created_at_matches_the_database_clock(pq: Pq, jobs: Jobs, q: PersistentQ) -> None:
    job_id = jobs.waiting()
    shown = as_json(pq("show", str(job_id), "--json"))
    assert abs(utc(shown["created_at"]) - q.get_job(job_id).created_at) < timedelta(milliseconds=1)
    assert json.dumps(shown)  # round-trips
