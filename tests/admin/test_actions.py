"""`pq requeue`, `pq fail` (and their aliases resubmit, mark-failed), `pq cancel` and `pq redeliver`: one
transaction per id, a line per id."""

from __future__ import annotations

import json

from pqueue import DeliveryStatus, PersistentQ, Status
from tests.admin.cli_support import Jobs, Pq, as_json, one_error_line, sqlite_only


def test_requeue__manual_intervention_job_gets_fresh_attempts(pq: Pq, jobs: Jobs, q: PersistentQ) -> None:
    job_id = jobs.manual(error="KeyError: 'vendor'")

    result = pq("requeue", str(job_id))

    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"job {job_id}: requeued; unprocessed with fresh attempts"
    job = q.get_job(job_id)
    assert (job.status, job.attempts, job.error) == (Status.UNPROCESSED, 0, None)
    last = q.events(job_id)[-1]
    assert (last.from_status, last.to_status, last.actor) == (
        Status.MANUAL_INTERVENTION,
        Status.UNPROCESSED,
        "admin",
    )


def test_requeue__processed_job_is_refused_with_the_reason(pq: Pq, jobs: Jobs, q: PersistentQ) -> None:
    job_id = jobs.processed()
    before = q.get_job(job_id), len(q.events(job_id))

    result = pq("requeue", str(job_id))

    assert result.exit_code == 1
    assert one_error_line(result) == (
        f"error: job {job_id} is processed; requeue needs crashed, manual_intervention or cancelled"
    )
    assert (q.get_job(job_id), len(q.events(job_id))) == before, "nothing changed"


def test_requeue__each_id_reported_and_a_refusal_does_not_stop_the_others(pq: Pq, jobs: Jobs, q: PersistentQ) -> None:
    crashed = jobs.crashed()
    processed = jobs.processed()
    cancelled = jobs.cancelled()

    result = pq("requeue", str(crashed), "999", str(processed), str(cancelled), "--json")

    assert result.exit_code == 1, "one id or more was refused"
    report = {entry["id"]: entry for entry in json.loads(result.stdout)}
    assert list(report) == [crashed, 999, processed, cancelled]
    assert report[crashed]["ok"] and report[crashed]["status"] == "unprocessed" and report[crashed]["error"] is None
    assert report[cancelled]["ok"] and report[cancelled]["stop_requested"] is False
    assert report[999] == {"id": 999, "ok": False, "message": "refused", "error": "job 999 not found"}
    assert not report[processed]["ok"] and "is processed" in report[processed]["error"]
    assert q.get_job(crashed).status == q.get_job(cancelled).status == Status.UNPROCESSED
    assert q.get_job(processed).status == Status.PROCESSED
    assert result.stderr.count("error: ") == 2, "a line per refused id on stderr"


@sqlite_only
def test_requeue__all_of_a_status(pq: Pq, jobs: Jobs, q: PersistentQ) -> None:
    manual = [jobs.manual(), jobs.manual()]
    crashed = jobs.crashed()

    result = pq("requeue", "--status", "manual_intervention", "--all")

    assert result.exit_code == 0, result.output
    assert [line.split(":")[0] for line in result.stdout.splitlines()] == [f"job {i}" for i in manual]
    assert [q.get_job(i).status for i in manual] == [Status.UNPROCESSED] * 2
    assert q.get_job(crashed).status == Status.CRASHED
    again = pq("requeue", "--status", "manual_intervention", "--all", "--json")
    assert as_json(again) == []


@sqlite_only
def test_requeue__needs_ids_or_status_with_all(pq: Pq, jobs: Jobs, q: PersistentQ) -> None:
    job_id = jobs.manual()
    for args in (["requeue"], ["requeue", "--all"], ["requeue", "--status", "crashed"], ["requeue", "1", "--all"]):
        result = pq(*args)
        assert result.exit_code == 2, args
        assert "give job ids, or --status S --all" in result.stderr
    assert pq("requeue", "abc").exit_code == 2
    assert q.get_job(job_id).status == Status.MANUAL_INTERVENTION


@sqlite_only
def test_fail__moves_to_manual_intervention_with_the_reason(pq: Pq, jobs: Jobs, q: PersistentQ) -> None:
    job_id = jobs.waiting()

    result = pq("fail", str(job_id), "--reason", "partner withdrew the request")

    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"job {job_id}: failed; manual_intervention"
    job = q.get_job(job_id)
    assert (job.status, job.operator_reason) == (Status.MANUAL_INTERVENTION, "partner withdrew the request")
    assert q.events(job_id)[-1].actor == "admin"


@sqlite_only
def test_fail__needs_a_reason_and_refuses_processed(pq: Pq, jobs: Jobs, q: PersistentQ) -> None:
    job_id = jobs.processed()
    assert pq("fail", str(job_id)).exit_code == 2, "--reason is required"
    blank = pq("fail", str(job_id), "--reason", " ")
    refused = pq("fail", str(job_id), "--reason", "x")
    assert blank.exit_code == 1 and "say why" in one_error_line(blank)
    assert refused.exit_code == 1 and f"job {job_id} is processed; fail needs" in one_error_line(refused)
    assert q.get_job(job_id).status == Status.PROCESSED


def test_resubmit__is_requeue_under_the_original_design_word(pq: Pq, jobs: Jobs, q: PersistentQ) -> None:
    job_id = jobs.manual(error="KeyError: 'vendor'")
    processed = jobs.processed()

    result = pq("resubmit", str(job_id))
    refused = pq("resubmit", str(processed))

    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"job {job_id}: requeued; unprocessed with fresh attempts"
    assert (q.get_job(job_id).status, q.get_job(job_id).attempts) == (Status.UNPROCESSED, 0)
    assert refused.exit_code == 1 and "requeue needs crashed, manual_intervention" in one_error_line(refused)
    assert q.get_job(processed).status == Status.PROCESSED


@sqlite_only
def test_mark_failed__is_fail_under_the_original_design_word(pq: Pq, jobs: Jobs, q: PersistentQ) -> None:
    job_id = jobs.waiting()

    result = pq("mark-failed", str(job_id), "--reason", "partner withdrew the request", "--json")

    assert as_json(result)[0]["status"] == "manual_intervention"
    job = q.get_job(job_id)
    assert (job.status, job.operator_reason) == (Status.MANUAL_INTERVENTION, "partner withdrew the request")
    assert pq("mark-failed", str(job_id)).exit_code == 2, "--reason is required, as for fail"


@sqlite_only
def test_aliases__listed_in_help_with_their_originals_options(pq: Pq) -> None:
    listing = pq("--help").stdout
    assert "resubmit     Same as `pq requeue`" in listing and "mark-failed  Same as `pq fail`" in listing
    for alias, original in (("resubmit", "requeue"), ("mark-failed", "fail")):
        alias_help, original_help = pq(alias, "--help").stdout, pq(original, "--help").stdout
        assert alias_help.split("Options:")[1] == original_help.split("Options:")[1]


@sqlite_only
def test_cancel__waiting_job_is_cancelled_at_once(pq: Pq, jobs: Jobs, q: PersistentQ) -> None:
    job_id = jobs.waiting()
    result = pq("cancel", str(job_id), "--json")
    expected = {"id": job_id, "ok": True, "status": "cancelled", "stop_requested": False}
    assert as_json(result) == [{**expected, "message": "cancelled", "error": None}]
    assert q.get_job(job_id).status == Status.CANCELLED


def test_cancel__running_job_records_a_stop_request(pq: Pq, jobs: Jobs, q: PersistentQ) -> None:
    running = jobs.running()

    result = pq("cancel", str(running.id))

    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == (f"job {running.id}: cancel requested; the consumer stops it at its next heartbeat")
    job = q.get_job(running.id)
    assert (job.status, job.stop_request) == (Status.UNDER_PROCESS, Status.CANCELLED), "the seat stays taken"


@sqlite_only
def test_cancel__processed_job_is_refused(pq: Pq, jobs: Jobs) -> None:
    job_id = jobs.processed()
    result = pq("cancel", str(job_id))
    assert result.exit_code == 1
    assert one_error_line(result) == (
        f"error: job {job_id} is processed; cancel needs unprocessed, crashed or under_process"
    )


def test_redeliver__queues_the_callback_again(pq: Pq, jobs: Jobs, q: PersistentQ) -> None:
    job_id = jobs.processed(callback_url="http://127.0.0.1:9/hook")
    delivery = q.delivery(job_id)
    assert delivery is not None
    q.record_delivery(delivery.id, delivered=False, status_code=500, error="HTTP 500")

    result = pq("redeliver", str(job_id), "--json")

    entry = as_json(result)[0]
    assert entry["ok"] and entry["id"] == job_id
    assert entry["delivery"]["status"] == "pending" and entry["delivery"]["attempts"] == 0
    assert entry["delivery"]["url"] == "http://127.0.0.1:9/hook"
    again = q.delivery(job_id)
    assert again is not None and (again.status, again.attempts) == (DeliveryStatus.PENDING, 0)


@sqlite_only
def test_redeliver__job_without_callback_is_refused(pq: Pq, jobs: Jobs) -> None:
    job_id = jobs.processed()
    result = pq("redeliver", str(job_id))
    assert result.exit_code == 1
    assert f"job {job_id} is processed; redeliver needs a job in" in one_error_line(result)
