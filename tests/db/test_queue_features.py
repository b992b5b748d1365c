"""Ordering, idempotency, delays, pause, seats, purge, pagination, stats, workers and the outbox."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypedDict

import pytest
from sqlalchemy import event

from pqueue import (
    DeliveryLockLost,
    DeliveryStatus,
    IdempotencyConflict,
    InvalidInput,
    InvalidTransition,
    NewJob,
    PersistentQ,
    SilenceWatch,
    Status,
)
from tests.support import wait_until


class SharedFields(TypedDict, total=False):
    """NewJob's keyword fields that a batch of alike jobs shares."""

    queue: str
    priority: int
    max_attempts: int
    callback_url: str


def claim_all(q: PersistentQ, queue: str | None = None) -> list[object]:
    """Claim and complete until nothing is left; the payloads in claim order."""
    order = []
    while (job := q.get_item("w", queue=queue)) is not None:
        order.append(job.payload)
        q.update_status(job.id, "processed", lease_id=job.lease_id)
    return order


def test_claim_order__priority_then_fifo(q: PersistentQ) -> None:
    for name, priority in [("a", 5), ("b", 0), ("c", 5), ("d", -1), ("e", 0)]:
        q.put_item(name, priority=priority)
    assert [j.payload for j in q.next_items(limit=10)] == ["d", "b", "e", "a", "c"]
    assert claim_all(q) == ["d", "b", "e", "a", "c"]


def test_delayed_job__waits_until_due(q: PersistentQ) -> None:
    q.put_item("later", run_after_seconds=60)
    q.put_item("now")
    assert claim_all(q) == ["now"]
    q.clock_offset = timedelta(seconds=61)
    assert claim_all(q) == ["later"]


def test_idempotency__same_key_returns_first_job(q: PersistentQ) -> None:
    first = q.put_item({"n": 1}, idempotency_key="order-7")
    again = q.put_items([NewJob({"n": 1}, idempotency_key="order-7")])
    assert again[0].id == first and not again[0].created
    assert q.count_items() == 1
    assert q.put_item({"n": 1}, idempotency_key="order-7", queue="other") != first, "keys are per queue"


def test_idempotency__same_key_other_payload_is_conflict(q: PersistentQ) -> None:
    first = q.put_item({"n": 1}, idempotency_key="order-7")
    with pytest.raises(IdempotencyConflict, match=f"'order-7'.*job {first}"):
        q.put_item({"n": 2}, idempotency_key="order-7")
    assert q.count_items() == 1


def test_batch_put__all_or_nothing(q: PersistentQ) -> None:
    q.put_item({"n": 1}, idempotency_key="k1")
    with pytest.raises(IdempotencyConflict):
        q.put_items([NewJob({"n": 9}), NewJob({"n": 2}, idempotency_key="k1")])
    assert q.count_items() == 1
    results = q.put_items([NewJob(i) for i in range(5)])
    assert [r.created for r in results] == [True] * 5 and q.count_items() == 6


def test_batch_put__stores_every_field_and_payload_exactly_in_list_order(q: PersistentQ) -> None:
    payloads: list[Any] = [
        {"nested": {"list": [1, 2.5, None, True]}, "text": 'naïve ☃ "quoted" \\ back'},
        "a plain string",
        None,
        [1, "two", {"three": 3}],
        2**62,
        {"big": -(2**70)},
        0.1,
        False,
        {},
    ]
    jobs = [NewJob(p, priority=i - 4) for i, p in enumerate(payloads)]
    jobs[2] = NewJob(None, queue="other", max_attempts=7, callback_url="http://127.0.0.1:9/cb")
    jobs.insert(4, NewJob({"keyed": True}, idempotency_key="k"))
    jobs.append(NewJob({"later": 1}, run_after_seconds=3600))
    results = q.put_items(jobs, actor="batch")
    ids = [r.id for r in results]
    assert ids == sorted(ids) and len(set(ids)) == len(jobs)
    for job, new_id in zip(jobs, ids, strict=True):
        stored = q.get_job(new_id)
        assert stored.payload == job.payload and type(stored.payload) is type(job.payload)
        assert (stored.queue, stored.priority, stored.callback_url) == (
            job.queue or "default",
            job.priority,
            job.callback_url,
        )
        assert stored.max_attempts == (job.max_attempts or 3)
        assert [(e.to_status, e.actor) for e in q.events(new_id)] == [(Status.UNPROCESSED, "batch")]
    assert q.get_job(ids[-1]).run_after > q.get_job(ids[0]).run_after


def test_batch_put__alike_jobs_store_every_payload_exactly(q: PersistentQ) -> None:
    # Jobs that share queue, priority, max_attempts and callback_url go in as an array of bare
    # payloads, which SQLite reads back as SQL values unless told otherwise: a string without
    # its quotes, true as 1, a number through a double.
    payloads: list[Any] = [
        {"nested": {"list": [1, 2.5, None, True]}, "text": 'naïve ☃ "quoted" \\ back'},
        "a plain string",
        "123",
        "true",
        'a "quoted" \\ string\n',
        True,
        False,
        None,
        0.1,
        1.0000000000000002,
        -(2**62),
        [1, "two", {"three": 3}],
        [],
        {},
    ]
    shared = SharedFields(queue="alike", priority=-3, max_attempts=5, callback_url="http://127.0.0.1:9/cb")
    for extra in (shared, SharedFields()):
        results = q.put_items([NewJob(p, **extra) for p in payloads], actor="alike")
        ids = [r.id for r in results]
        assert ids == sorted(ids) and len(set(ids)) == len(payloads)
        for payload, new_id in zip(payloads, ids, strict=True):
            stored = q.get_job(new_id)
            assert stored.payload == payload and type(stored.payload) is type(payload), (payload, stored.payload)
            assert (stored.queue, stored.priority, stored.max_attempts, stored.callback_url) == (
                extra.get("queue", "default"),
                extra.get("priority", 0),
                extra.get("max_attempts", 3),
                extra.get("callback_url"),
            )
            assert [(e.to_status, e.actor) for e in q.events(new_id)] == [(Status.UNPROCESSED, "alike")]


def test_batch_put__names_the_job_whose_payload_cannot_be_stored(q: PersistentQ) -> None:
    with pytest.raises(InvalidInput, match=r"jobs\[2\]\.payload"):
        q.put_items([NewJob(1), NewJob(2), NewJob({"x": float("inf")}), NewJob(4)])
    assert q.count_items() == 0


def test_bad_input__changes_nothing(q: PersistentQ) -> None:
    bad = [
        NewJob(float("nan")),
        NewJob(object()),
        NewJob(1, queue=""),
        NewJob(1, queue="x" * 201),
        NewJob(1, idempotency_key=""),
        NewJob(1, priority=2**40),
        NewJob(1, run_after_seconds=-1),
        NewJob(1, max_attempts=0),
        NewJob(1, max_attempts=2.5),  # type: ignore[arg-type]
    ]
    for job in bad:
        with pytest.raises(InvalidInput):
            q.put_items([NewJob("fine"), job])
    assert q.count_items() == 0


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("ftp://127.0.0.1/x", "is not an http or https URL"),
        ("http://:80/x", "names no host"),
        ("http://[::1/", "has an invalid host or port"),
        ("https://elsewhere.example/hook", "host 'elsewhere.example' is not allowed; use one of 127.0.0.1"),
    ],
)
def test_put__callback_url_the_library_refuses__changes_nothing(
    make_queue: Callable[..., PersistentQ], url: str, problem: str
) -> None:
    q = make_queue(callback_allow="127.0.0.1")
    with pytest.raises(InvalidInput, match=re.escape(problem)) as refused:
        q.put_items([NewJob("fine", callback_url="http://127.0.0.1:9/cb"), NewJob("bad", callback_url=url)])
    assert refused.value.field == "jobs[1].callback_url"
    with pytest.raises(InvalidInput):
        q.put_item("bad", callback_url=url, idempotency_key="k")
    assert q.count_items() == 0


def test_seats__cap_running_jobs_per_queue(q: PersistentQ) -> None:
    for i in range(5):
        q.put_item(i)
        q.put_item(i, queue="remote")
    assert q.get_item("w1") is not None
    assert q.get_item("w2") is None, "one seat by default"
    q.set_seats("remote", 3)
    assert [q.get_item(f"r{i}", queue="remote") is not None for i in range(4)] == [True, True, True, False]


def test_queue_policy__stored_per_queue_and_defaults_where_unset(make_queue: Callable[..., PersistentQ]) -> None:
    q = make_queue(max_attempts=4, job_timeout=60, lease_seconds=20, retry_backoff_seconds=2)
    assert q.queue_settings("remote") is None, "nothing stored until someone sets it"
    info = q.set_queue_policy("remote", max_attempts=2, job_timeout=4.5, lease_seconds=8)
    assert (info.seats, info.max_attempts, info.job_timeout, info.lease_seconds, info.retry_backoff_seconds) == (
        1,
        2,
        4.5,
        8.0,
        2.0,
    ), "unset values are this program's PQ_ defaults"
    q.set_queue_policy("remote", retry_backoff_seconds=0, seats=2)
    other_host = make_queue(max_attempts=9, job_timeout=1, lease_seconds=1, retry_backoff_seconds=1)
    stored = other_host.queue_settings("remote")
    assert stored is not None
    assert (stored.seats, stored.max_attempts, stored.job_timeout, stored.lease_seconds) == (2, 2, 4.5, 8.0)
    assert stored.retry_backoff_seconds == 0.0 and not stored.paused
    assert other_host.pause("remote").max_attempts == 2, "pausing keeps the policy"


def test_queue_policy__the_claim_takes_the_stored_lease_and_heartbeats_keep_it(q: PersistentQ) -> None:
    q.put_item("a", queue="remote")
    q.put_item("b")
    q.set_queue_policy("remote", lease_seconds=120)
    job = q.get_item("w", queue="remote", lease_seconds=5)
    other = q.get_item("w2", lease_seconds=5)
    assert job is not None and other is not None
    assert (job.lease_seconds, other.lease_seconds) == (120.0, 5.0), "stored lease wins, else the claimer's"
    assert job.lease_expires_at is not None and job.started_at is not None
    assert 119 < (job.lease_expires_at - job.started_at).total_seconds() <= 120
    q.set_queue_policy("remote", lease_seconds=2)  # from the next claim: this one keeps 120
    renewed = q.heartbeat(job.id, job.lease_id)
    assert 110 < (renewed - q.now()).total_seconds() <= 120
    assert q.get_job(job.id).lease_seconds == 120.0


def test_queue_policy__rescue_waits_out_each_jobs_own_claimed_lease(q: PersistentQ) -> None:
    q.put_item("short", queue="remote")
    q.put_item("long")
    q.set_queue_policy("remote", lease_seconds=0.5)
    short = q.get_item("w", queue="remote")  # the queue's 0.5 s, not this program's 30 s
    long = q.get_item("w2")
    assert short is not None and long is not None
    q.clock_offset = timedelta(seconds=120)  # the database's clock says both leases are long over
    watch = SilenceWatch()
    rescued = wait_until(lambda: q.rescue_expired(watch=watch), what="the 0.5 s lease to be rescued")
    assert rescued == [(short.id, Status.CRASHED)], "the 30 s lease is not silent long enough yet"
    assert q.get_job(long.id).status == Status.UNDER_PROCESS


def test_queue_policy__the_first_program_to_serve_a_queue_stores_its_defaults_and_later_ones_follow(
    make_queue: Callable[..., PersistentQ],
) -> None:
    first = make_queue(max_running=2, max_attempts=2, job_timeout=7, lease_seconds=9, retry_backoff_seconds=0)
    first.pause("remote")  # a row with nothing of the policy stored yet
    adopted = first.adopt_queue("remote")
    assert (adopted.seats, adopted.max_attempts, adopted.job_timeout, adopted.lease_seconds) == (2, 2, 7.0, 9.0)
    assert adopted.paused and adopted.retry_backoff_seconds == 0.0
    other_host = make_queue(max_running=5, max_attempts=6, job_timeout=60, lease_seconds=30, retry_backoff_seconds=3)
    assert other_host.adopt_queue("remote") == adopted, "the stored policy wins over another host's PQ_"
    other_host.set_queue_policy("remote", max_attempts=4)
    assert first.adopt_queue("remote").max_attempts == 4, "adopting never undoes an operator's change"
    relayed = first.adopt_queue("relayed", lease_seconds=600)  # the relay leases by PQ_RELAY_LEASE_SECONDS
    assert (relayed.lease_seconds, relayed.max_attempts) == (600.0, 2)
    with pytest.raises(InvalidInput, match="lease_seconds"):
        first.adopt_queue("other", lease_seconds=0)
    assert first.queue_settings("other") is None, "refused: nothing stored"


def test_queue_policy__max_attempts_reaches_waiting_jobs_at_their_claim_and_own_limits_stay(
    make_queue: Callable[..., PersistentQ],
) -> None:
    producer_host = make_queue(max_attempts=3, retry_backoff_seconds=0)
    plain, own = producer_host.put_item("plain"), producer_host.put_item("own", max_attempts=5)
    assert producer_host.get_job(plain).max_attempts == 3, "nothing stored yet: the submitter's default"
    consumer_host = make_queue(max_attempts=1, retry_backoff_seconds=0)
    consumer_host.adopt_queue()
    first = consumer_host.get_item("w")
    assert first is not None and first.id == plain and first.max_attempts == 1
    assert consumer_host.get_job(own).max_attempts == 5
    assert consumer_host.update_status(plain, "crashed", lease_id=first.lease_id).status == Status.MANUAL_INTERVENTION
    second = consumer_host.get_item("w")
    assert second is not None and second.id == own and second.max_attempts == 5, "a job's own limit is kept"
    assert "attempt 1 of 5, lease 1" in [e.message for e in consumer_host.events(own)]
    assert "attempt 1 of 1, lease 1" in [e.message for e in consumer_host.events(plain)]
    later = producer_host.put_item("later")
    assert producer_host.get_job(later).max_attempts == 1, "a new job is stamped with the stored policy"


@pytest.mark.parametrize("path", ["worker", "rescue"])
def test_queue_policy__a_failed_attempt_waits_the_queues_stored_backoff(
    make_queue: Callable[..., PersistentQ], path: str
) -> None:
    q = make_queue(retry_backoff_seconds=0, lease_seconds=1)
    job_id = q.put_item("fails")
    q.set_queue_policy("default", retry_backoff_seconds=600)  # every host: not this program's 0
    job = q.get_item("w")
    assert job is not None
    if path == "worker":
        q.update_status(job_id, "crashed", lease_id=job.lease_id, error="boom")
    else:
        q.clock_offset = timedelta(seconds=60)
        assert q.rescue_expired() == [(job_id, Status.CRASHED)]
    crashed = q.get_job(job_id)
    assert crashed.status == Status.CRASHED
    wait = (crashed.run_after - q.now()).total_seconds()
    assert 600 * 0.75 - 5 < wait <= 600 * 1.25, wait


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("seats", 0, "at least 1"),
        ("max_attempts", 0, "at least 1"),
        ("job_timeout", 0, "more than 0"),
        ("lease_seconds", -1.5, "more than 0"),
        ("retry_backoff_seconds", -1, "at least 0"),
        ("lease_seconds", "10", "a number"),
        ("max_attempts", 2.5, "an integer"),
    ],
)
def test_queue_policy__bad_value_is_refused_and_changes_nothing(
    q: PersistentQ, field: str, value: object, words: str
) -> None:
    q.set_queue_policy("remote", max_attempts=5)
    with pytest.raises(InvalidInput, match=words) as refused:
        q.set_queue_policy("remote", **{"seats": 4, field: value})  # type: ignore[arg-type]
    assert refused.value.field == field
    info = q.queue_settings("remote")
    assert info is not None and (info.seats, info.max_attempts) == (1, 5)


def test_pause__stops_claims_until_resume(q: PersistentQ) -> None:
    q.put_item("a")
    assert q.pause().paused
    assert q.get_item("w") is None
    assert q.resume().paused is False
    assert q.get_item("w") is not None


def test_purge__by_age_and_status(q: PersistentQ) -> None:
    old_done = _finish(q, "processed")
    old_cancelled = q.put_item("c")
    q.cancel(old_cancelled)
    running = q.put_item("r", queue="busy")
    assert q.get_item("w", queue="busy") is not None
    q.clock_offset = timedelta(days=8)
    new_done = _finish(q, "processed")
    assert q.purge(7 * 86400, ["processed"], dry_run=True) == 1
    assert q.count_items() == 4, "dry run changes nothing"
    assert q.purge(7 * 86400, ["processed"], batch_size=1) == 1
    remaining = {j.id for j in q.get_all_items().items}
    assert old_done not in remaining and {old_cancelled, running, new_done} <= remaining
    assert q.purge(7 * 86400, ["cancelled"]) == 1
    with pytest.raises(InvalidInput, match="never purged"):
        q.purge(0, ["under_process"])
    with pytest.raises(InvalidInput, match="not a job status"):
        q.purge(0, ["done"])


def test_purge__keeps_jobs_whose_callback_is_pending(q: PersistentQ) -> None:
    job_id = _finish(q, "processed", callback_url="http://127.0.0.1:9/cb")
    q.clock_offset = timedelta(days=8)
    assert q.purge(86400, ["processed"]) == 0
    [delivery] = q.claim_deliveries("w")
    q.record_delivery(delivery.id, delivered=True, status_code=200)
    assert q.purge(86400, ["processed"]) == 1
    assert q.count_items() == 0 and job_id


def _job_reads(q: PersistentQ, call: Callable[[], object]) -> list[str]:
    """The plan of each SELECT on pq_jobs that call() runs (PostgreSQL: with seq scans discouraged,
    so an index shows up whenever the query can use it)."""
    statements: list[tuple[str, Any]] = []

    def grab(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "FROM pq_jobs" in statement:
            statements.append((statement, parameters))

    event.listen(q.engine, "before_cursor_execute", grab)
    try:
        call()
    finally:
        event.remove(q.engine, "before_cursor_execute", grab)
    plans = []
    with q.engine.begin() as conn:
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        if q.engine.dialect.name == "sqlite":
            explain = "EXPLAIN QUERY PLAN "
        else:
            cursor.execute("SET LOCAL enable_seqscan = off")
            explain = "EXPLAIN "
        for statement, parameters in statements:
            plans.append("\n".join(str(row[-1]) for row in cursor.execute(explain + statement, parameters)))
    return plans


def test_finished_index__holds_finished_jobs_only_and_serves_purge_and_durations(q: PersistentQ) -> None:
    q.put_items([NewJob(n) for n in range(3)])
    done = _finish(q, "processed")
    with q.engine.connect() as conn:
        if q.engine.dialect.name == "sqlite":
            found = "SELECT sql FROM sqlite_master WHERE name = 'ix_pq_jobs_status_finished'"
        else:
            found = (
                "SELECT indexdef FROM pg_indexes"
                " WHERE indexname = 'ix_pq_jobs_status_finished' AND schemaname = current_schema()"
            )
        definition = conn.exec_driver_sql(found).scalar_one()
    assert "finished_at IS NOT NULL" in definition, definition
    plans = _job_reads(q, lambda: (q.purge(3600, ["processed", "cancelled"], dry_run=True), q.run_durations()))
    assert len(plans) == 2 and all("ix_pq_jobs_status_finished" in plan for plan in plans), plans
    assert q.purge(0, ["processed"]) == 1 and q.count_items() == 3 and done


def test_pagination__newest_first_with_cursor(q: PersistentQ) -> None:
    ids = [q.put_item(i) for i in range(7)]
    seen: list[int] = []
    cursor = None
    while True:
        page = q.get_all_items(limit=3, cursor=cursor)
        seen += [j.id for j in page.items]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == ids[::-1]
    oldest = q.get_all_items(limit=3, oldest_first=True)
    assert [j.id for j in oldest.items] == ids[:3]
    with pytest.raises(InvalidInput, match="cursor"):
        q.get_all_items(cursor="abc")
    with pytest.raises(InvalidInput, match="limit"):
        q.get_all_items(limit=0)


def test_filters__status_queue_search_since(q: PersistentQ) -> None:
    q.put_item({"vendor": "ACME"}, queue="a")
    q.clock_offset = timedelta(hours=2)
    q.put_item({"vendor": "Globex"}, queue="b")
    q.fail(q.put_item({"vendor": "acme-2"}, queue="b"), "x")
    assert q.count_items(search="acme") == 2
    assert q.count_items(queue="b") == 2
    assert q.count_items(status="manual_intervention") == 1
    assert q.count_items(since_seconds=3600) == 2
    assert q.count_items(search="100%") == 0


def test_stats__counts_running_and_oldest(make_queue: Callable[..., PersistentQ]) -> None:
    q = make_queue(lease_seconds=30)
    q.put_item("a")
    q.put_item("b")
    job = q.get_item("w")
    assert job is not None
    q.clock_offset = timedelta(seconds=10)
    stats = q.stats()
    assert stats.counts == {"default": {"under_process": 1, "unprocessed": 1}}
    assert stats.total(Status.UNPROCESSED) == 1
    assert stats.oldest_waiting_seconds is not None and 9 < stats.oldest_waiting_seconds < 60
    [running] = stats.running
    assert running.id == job.id and 9 < running.elapsed_seconds < 60 and 0 < running.lease_remaining_seconds < 21


def test_throughput_and_durations(q: PersistentQ) -> None:
    _finish(q, "processed")
    _finish(q, "crashed")
    points = q.throughput(window_seconds=600, bucket_seconds=60)
    assert {(p.status, p.count) for p in points} == {(Status.PROCESSED, 1), (Status.MANUAL_INTERVENTION, 1)}
    assert len(q.run_durations()) == 1


def test_workers__registry_shows_liveness_and_current_job(q: PersistentQ) -> None:
    q.register_worker("c1", kind="consumer", queue="default", host="h1", pid=11)
    q.register_worker("r1", kind="relay", queue="remote", host="h2", pid=12)
    q.put_item("a")
    job = q.get_item("c1")
    assert job is not None
    q.clock_offset = timedelta(seconds=30)
    q.touch_worker("r1")
    by_id = {w.id: w for w in q.workers()}
    assert by_id["c1"].current_job_id == job.id and by_id["r1"].current_job_id is None
    assert by_id["c1"].seen_seconds_ago > 25 > by_id["r1"].seen_seconds_ago
    q.unregister_worker("c1")
    assert [w.id for w in q.workers()] == ["r1"]


def test_workers__rescue_forgets_a_worker_unseen_for_a_day_and_a_live_one_comes_back(q: PersistentQ) -> None:
    q.register_worker("dead", kind="consumer", queue="default", host="h1", pid=11)
    q.register_worker("cut-off", kind="relay", queue="remote", host="h2", pid=12)
    q.clock_offset = timedelta(hours=23)
    q.rescue_expired()
    assert [w.id for w in q.workers()] == ["cut-off", "dead"], "a day has not passed yet"

    q.clock_offset = timedelta(hours=25)
    q.rescue_expired()
    assert q.workers() == []
    q.touch_worker("cut-off")  # this program is alive and reached the database again

    [back] = q.workers()
    assert (back.id, back.kind, back.queue, back.host, back.pid) == ("cut-off", "relay", "remote", "h2", 12)
    q.touch_worker("never-registered-here")
    assert [w.id for w in q.workers()] == ["cut-off"]


def test_outbox__final_state_queues_delivery_in_same_step(q: PersistentQ) -> None:
    job_id = _finish(q, "processed", callback_url="http://127.0.0.1:9/cb", result={"v": 1})
    delivery = q.delivery(job_id)
    assert delivery is not None and delivery.status == DeliveryStatus.PENDING
    assert delivery.idempotency_key == f"{job_id}-1"
    assert '"result":{"v":1}' in delivery.body and '"status":"processed"' in delivery.body
    assert q.get_job(job_id).delivery == delivery
    _finish(q, "crashed", callback_url="http://127.0.0.1:9/cb")  # out of attempts: final too
    assert len(q.claim_deliveries("w")) == 2


def test_outbox__claim_locks_and_records_attempts(q: PersistentQ) -> None:
    job_id = _finish(q, "processed", callback_url="http://127.0.0.1:9/cb")
    [mine] = q.claim_deliveries("w1", lock_seconds=60)
    assert q.claim_deliveries("w2") == [], "a delivery being sent is not handed out twice"
    retry = q.record_delivery(mine.id, delivered=False, status_code=500, error="HTTP 500", retry_in_seconds=30)
    assert (retry.status, retry.attempts, retry.last_status_code) == (DeliveryStatus.PENDING, 1, 500)
    assert q.claim_deliveries("w2") == []
    q.clock_offset = timedelta(seconds=31)
    [again] = q.claim_deliveries("w2")
    dead = q.record_delivery(again.id, delivered=False, status_code=400, error="HTTP 400")
    assert dead.status == DeliveryStatus.UNDELIVERABLE
    redo = q.redeliver(job_id)
    assert (redo.status, redo.attempts) == (DeliveryStatus.PENDING, 0)
    [third] = q.claim_deliveries("w3")
    assert q.record_delivery(third.id, delivered=True, status_code=204).status == DeliveryStatus.DELIVERED
    assert q.get_job(job_id).status == Status.PROCESSED, "delivery never changes the job"


def test_outbox__outcome_of_a_worker_whose_lock_was_taken_over_is_refused(q: PersistentQ) -> None:
    job_id = _finish(q, "processed", callback_url="http://127.0.0.1:9/cb")
    [slow] = q.claim_deliveries("slow", lock_seconds=60)
    q.clock_offset = timedelta(seconds=61)  # the slow worker outlasted its lock
    [taken] = q.claim_deliveries("fast", lock_seconds=60)
    delivered = q.record_delivery(taken.id, delivered=True, status_code=204, held_by="fast")
    assert delivered.status == DeliveryStatus.DELIVERED

    with pytest.raises(DeliveryLockLost, match=f"delivery {slow.id} is no longer held by slow"):
        q.record_delivery(slow.id, delivered=False, status_code=400, error="HTTP 400", held_by="slow")
    assert q.delivery(job_id) == delivered, "a stale failure never overwrites the delivery"
    with pytest.raises(InvalidInput, match="no delivery 999"):
        q.record_delivery(999, delivered=True, held_by="fast")


def test_outbox__outcome_after_the_lock_ran_out_counts_while_nobody_took_over(q: PersistentQ) -> None:
    _finish(q, "processed", callback_url="http://127.0.0.1:9/cb")
    [mine] = q.claim_deliveries("w1", lock_seconds=60)
    q.clock_offset = timedelta(seconds=61)
    recorded = q.record_delivery(mine.id, delivered=True, status_code=200, held_by="w1")
    assert (recorded.status, recorded.attempts) == (DeliveryStatus.DELIVERED, 1)
    assert q.claim_deliveries("w2") == []


def test_redeliver__needs_a_final_job_with_callback(q: PersistentQ) -> None:
    job_id = q.put_item("a", callback_url="http://127.0.0.1:9/cb")
    with pytest.raises(InvalidTransition, match="redeliver needs"):
        q.redeliver(job_id)


def test_backup__writes_consistent_copy(q: PersistentQ, tmp_path: object, backend: str) -> None:
    if backend != "sqlite":
        with pytest.raises(Exception, match="pg_dump"):
            q.backup("/tmp/x")
        return
    import sqlite3
    from pathlib import Path

    q.put_item("a")
    target = Path(str(tmp_path)) / "copy.db"
    q.backup(str(target))
    assert sqlite3.connect(target).execute("SELECT count(*) FROM pq_jobs").fetchone() == (1,)
    with pytest.raises(InvalidInput, match="already exists"):
        q.backup(str(target))


def _finish(q: PersistentQ, outcome: str, callback_url: str | None = None, result: object = None) -> int:
    queue = f"finish-{outcome}-{q.count_items()}"
    job_id = q.put_item("p", queue=queue, callback_url=callback_url, max_attempts=1)
    job = q.get_item("w", queue=queue)
    assert job is not None
    q.update_status(
        job_id, outcome, lease_id=job.lease_id, result=result, error="e" if outcome != "processed" else None
    )
    return job_id
