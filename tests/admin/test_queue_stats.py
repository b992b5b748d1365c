"""`pq pause`, `pq resume`, `pq relay go`, `pq queue show/set`, `pq workers`, `pq stats` and `pq rescue`."""

from __future__ import annotations

import json
from collections.abc import Callable

from pqueue import PersistentQ, Status
from tests.admin.cli_support import Jobs, Pq, as_json, sqlite_only

DEFAULT_POLICY = {
    "max_attempts": 3, "job_timeout": 3600.0, "lease_seconds": 30.0, "retry_backoff_seconds": 10.0,
    "timeout_retries": 0,
}  # fmt: skip


def test_pause_and_resume__consumers_stop_and_start_claiming(pq: Pq, jobs: Jobs, q: PersistentQ) -> None:
    jobs.waiting()

    paused = pq("pause", "--json")
    assert as_json(paused) == {"name": "default", "seats": 1, "paused": True} | DEFAULT_POLICY
    assert q.get_item("worker-1") is None, "a paused queue hands out nothing"

    resumed = pq("resume")
    assert resumed.exit_code == 0
    assert resumed.stdout.strip() == "queue default resumed: consumers claim from it again"
    assert q.get_item("worker-1") is not None


@sqlite_only
def test_pause__names_a_queue(pq: Pq, q: PersistentQ) -> None:
    result = pq("pause", "--queue", "reports")
    assert result.stdout.strip() == "queue reports paused: consumers claim nothing more; a running job finishes"
    assert {info.name: info.paused for info in q.queues()} == {"reports": True}


@sqlite_only
def test_relay_go__resumes_the_queue_the_relay_waits_on(pq: Pq, q: PersistentQ) -> None:
    q.pause("nc4orders")  # pq-relay --wait-for-go --queue nc4orders: held until an operator says go
    q.register_worker("relay-1", kind="relay", queue="nc4orders", host="h", pid=1)
    q.pause("agents")

    result = pq("relay", "go")
    named = pq("relay", "go", "--queue", "agents", "--json")
    unknown = pq("relay", "go", "--queue", "remote")

    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "queue nc4orders resumed: the relay feeds it to the remote agents"
    assert as_json(named) == {"name": "agents", "seats": 1, "paused": False} | DEFAULT_POLICY
    assert (unknown.exit_code, unknown.stderr.strip()) == (
        1,
        "error: queue 'remote' does not exist; a go resumes a queue, it never creates one",
    )
    assert {info.name: info.paused for info in q.queues()} == {"agents": False, "nc4orders": False}


def test_queue_set_and_show__stored_for_every_host_and_reported_by_stats(pq: Pq, jobs: Jobs, q: PersistentQ) -> None:
    jobs.running()
    assert pq("queue", "show", "default").stdout.strip() == (
        "queue default: 1 seat, claiming, 3 attempts, 1h timeout, 30s lease, 10s backoff"
    ), "never set: this host's PQ_ defaults"

    result = pq("queue", "set", "default", "--max-attempts", "2", "--timeout", "4", "--lease", "1m", "--json")

    assert as_json(result) == {
        "name": "default", "seats": 1, "paused": False, "max_attempts": 2, "job_timeout": 4.0,
        "lease_seconds": 60.0, "retry_backoff_seconds": 10.0, "timeout_retries": 0,
    }  # fmt: skip
    info = q.queue_settings("default")
    assert info is not None and (info.max_attempts, info.job_timeout, info.lease_seconds) == (2, 4.0, 60.0)
    shown = pq("queue", "show", "default").stdout.strip()
    assert shown == "queue default: 1 seat, claiming, 2 attempts, 4s timeout, 1m lease, 10s backoff"
    [run] = json.loads(pq("stats", "--json").stdout)["running"]
    assert run["timeout_seconds"] == 4.0, "stats measures a running job against its queue's stored timeout"


def test_queue_set__bad_value_is_one_line_and_changes_nothing(pq: Pq, q: PersistentQ) -> None:
    q.set_queue_policy("default", max_attempts=5)

    refused = pq("queue", "set", "default", "--max-attempts", "0", "--timeout", "9")
    nothing = pq("queue", "set", "default")
    unreadable = pq("queue", "set", "default", "--lease", "soon")

    assert (refused.exit_code, refused.stderr.strip()) == (1, "error: max_attempts: must be at least 1, got 0")
    assert nothing.exit_code == 2 and "give at least one of --seats" in nothing.stderr
    assert unreadable.exit_code == 2 and "'soon' is not a duration" in unreadable.stderr
    info = q.queue_settings("default")
    assert info is not None and (info.max_attempts, info.job_timeout) == (5, q.settings.job_timeout)


def test_workers__lists_each_with_its_current_job(pq: Pq, jobs: Jobs, q: PersistentQ) -> None:
    q.register_worker("worker-1", kind="consumer", queue="default", host="host-a", pid=4242)
    q.register_worker("relay-1", kind="relay", queue="remote", host="host-b", pid=77)
    running = jobs.running()

    listed = as_json(pq("workers", "--json"))

    assert [w["id"] for w in listed] == ["relay-1", "worker-1"]
    relay, consumer = listed
    assert list(consumer) == [
        "id",
        "kind",
        "host",
        "pid",
        "queue",
        "started_at",
        "last_seen",
        "seen_seconds_ago",
        "current_job_id",
    ]
    assert (consumer["kind"], consumer["host"], consumer["pid"], consumer["queue"]) == (
        "consumer",
        "host-a",
        4242,
        "default",
    )
    assert consumer["current_job_id"] == running.id and relay["current_job_id"] is None
    assert 0 <= consumer["seen_seconds_ago"] < 60 and consumer["last_seen"].endswith("Z")
    table = pq("workers").stdout.splitlines()
    assert table[0].split() == ["id", "kind", "host", "pid", "queue", "started", "last", "seen", "job"]
    assert table[2].split()[:5] == ["worker-1", "consumer", "host-a", "4242", "default"]
    assert table[2].split()[-1] == str(running.id)


@sqlite_only
def test_workers__none_registered(pq: Pq, q: PersistentQ) -> None:
    assert as_json(pq("workers", "--json")) == []
    assert "no consumer or relay is registered" in pq("workers").stderr


def test_stats__json_counts_running_and_throughput(pq: Pq, jobs: Jobs, q: PersistentQ) -> None:
    jobs.processed()
    jobs.manual()
    running = jobs.running()
    jobs.waiting(queue="reports")

    data = as_json(pq("stats", "--json"))

    statuses = [s.value for s in Status]
    assert list(data) == [
        "at",
        "counts",
        "totals",
        "oldest_waiting_seconds",
        "running",
        "processed_last_hour",
        "processed_per_minute",
        "per_minute",
        "deliveries",
        "queues",
        "replication",
        "manual_intervention",
        "calibration",
    ]
    assert data["counts"]["default"] == {
        **dict.fromkeys(statuses, 0),
        "processed": 1,
        "manual_intervention": 1,
        "under_process": 1,
    }
    assert data["counts"]["reports"] == {**dict.fromkeys(statuses, 0), "unprocessed": 1}
    assert data["totals"] == {
        **dict.fromkeys(statuses, 0),
        "processed": 1,
        "manual_intervention": 1,
        "under_process": 1,
        "unprocessed": 1,
    }
    assert data["oldest_waiting_seconds"] >= 0
    [run] = data["running"]
    assert (run["id"], run["queue"], run["worker_id"], run["attempts"]) == (running.id, "default", "worker-1", 1)
    assert run["timeout_seconds"] == 3600 and 0 <= run["elapsed_seconds"] < 60 and run["lease_remaining_seconds"] > 0
    assert data["processed_last_hour"] == 1
    assert data["processed_per_minute"] == round(1 / 60, 2)
    assert [point["processed"] for point in data["per_minute"]] == [1]
    assert data["deliveries"] == {"pending": 0, "delivered": 0, "undeliverable": 0}
    assert data["queues"] == [
        {"name": "default", "seats": 1, "paused": False} | DEFAULT_POLICY,
        {"name": "reports", "seats": 1, "paused": False} | DEFAULT_POLICY,
    ]


@sqlite_only
def test_stats__table_for_people(pq: Pq, jobs: Jobs) -> None:
    running = jobs.running()
    jobs.waiting()

    result = pq("stats")

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["status", "default", "total"]
    rows = {line.split()[0]: line.split()[1:] for line in lines[1:7]}
    assert list(rows) == [s.value for s in Status]
    assert rows["unprocessed"] == rows["under_process"] == ["1", "1"]
    assert rows["processed"] == ["0", "0"]
    queue_line = "queue default: 1 seat, claiming, 3 attempts, 1h timeout, 30s lease, 10s backoff"
    assert queue_line.split() in [line.split() for line in lines]
    assert any(line.startswith("running") and f"job {running.id} (default) on worker-1" in line for line in lines)
    assert any(line.startswith("processed") and "0 in the last hour" in line for line in lines)


@sqlite_only
def test_stats__watch_writes_one_json_object_per_refresh(pq: Pq, jobs: Jobs) -> None:
    jobs.waiting()
    result = pq("stats", "--watch", "--json", "--interval", "0.1", "--count", "2")
    assert result.exit_code == 0, result.output
    rounds = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rounds) == 2 and all(r["totals"]["unprocessed"] == 1 for r in rounds)
    tables = pq("stats", "--watch", "--interval", "0.1", "--count", "2").stdout.split("\n\n")
    assert len(tables) == 2 and all(t.startswith("status ") for t in tables), "piped: snapshots one after another"


def test_rescue__moves_expired_leases(pq: Pq, aged: Callable[[float], Jobs], q: PersistentQ) -> None:
    expired = aged(1 / 24).running(lease_seconds=30)  # claimed an hour ago with a 30s lease

    result = pq("rescue", "--json")

    assert as_json(result) == [{"id": expired.id, "status": "crashed"}]
    job = q.get_job(expired.id)
    assert job.status == Status.CRASHED and "lease expired" in (job.error or "")
    assert q.events(expired.id)[-1].actor == "admin"
    assert pq("rescue").stdout.strip() == "no expired lease; nothing to rescue"


def test_queue_set__a_lowered_max_attempts_says_which_waiting_jobs_it_ended(pq: Pq, jobs: Jobs, q: PersistentQ) -> None:
    spent = jobs.crashed()
    fresh = jobs.waiting()

    result = pq("queue", "set", "default", "--max-attempts", "1")

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[1] == (
        f"moved to manual_intervention, their attempts already at the new limit 1: {spent}"
    )
    assert q.get_job(spent).status == Status.MANUAL_INTERVENTION
    assert q.get_job(fresh).status == Status.UNPROCESSED
    again = as_json(pq("queue", "set", "default", "--max-attempts", "1", "--json"))
    assert "ended" not in again, "nothing left to end"
