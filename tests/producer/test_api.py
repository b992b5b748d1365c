"""Every endpoint's happy path, through the real app on a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import datetime

import httpx
import pytest
from fastapi import FastAPI

from pqueue import PersistentQ, Status

pytestmark = pytest.mark.anyio


def store_of(app: FastAPI) -> PersistentQ:
    store: PersistentQ = app.state.intake.store
    return store


def parse_time(value: str) -> datetime:
    moment = datetime.fromisoformat(value)
    assert moment.utcoffset() is not None and moment.utcoffset().total_seconds() == 0  # type: ignore[union-attr]
    return moment


async def test_submit__answers_202_after_storing_the_job(app: FastAPI, client: httpx.AsyncClient) -> None:
    response = await client.post("/jobs", json={"payload": {"readings": [1, 2]}, "priority": 3, "queue": "q1"})

    assert response.status_code == 202
    body = response.json()
    assert body == {"id": body["id"], "status": "unprocessed", "queue": "q1", "idempotency_key": None}
    assert response.headers["location"] == f"/jobs/{body['id']}"
    stored = store_of(app).get_job(body["id"])
    assert (stored.payload, stored.priority, stored.queue, stored.status) == (
        {"readings": [1, 2]},
        3,
        "q1",
        "unprocessed",
    )


async def test_submit__same_idempotency_key_returns_first_job_with_200(app: FastAPI, client: httpx.AsyncClient) -> None:
    first = await client.post("/jobs", json={"payload": {"n": 1}, "idempotency_key": "order-1"})
    again = await client.post("/jobs", json={"payload": {"n": 1}, "idempotency_key": "order-1"})

    assert (first.status_code, again.status_code) == (202, 200)
    assert again.json()["id"] == first.json()["id"]
    assert store_of(app).count_items() == 1


async def test_submit__same_key_other_payload_is_409_and_stores_nothing(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    first = await client.post("/jobs", json={"payload": {"n": 1}, "idempotency_key": "order-1"})
    clash = await client.post("/jobs", json={"payload": {"n": 2}, "idempotency_key": "order-1"})

    assert clash.status_code == 409
    assert f"already used by job {first.json()['id']}" in clash.json()["detail"]
    assert store_of(app).count_items() == 1


async def test_submit__idempotency_key_header_works_like_the_field(app: FastAPI, client: httpx.AsyncClient) -> None:
    first = await client.post("/jobs", json={"payload": 7}, headers={"Idempotency-Key": "hdr-1"})
    again = await client.post("/jobs", json={"payload": 7, "idempotency_key": "hdr-1"})

    assert (first.status_code, again.status_code) == (202, 200)
    assert first.json()["idempotency_key"] == "hdr-1"
    assert store_of(app).get_job(first.json()["id"]).idempotency_key == "hdr-1"


async def test_batch__stores_all_jobs_in_order(app: FastAPI, client: httpx.AsyncClient) -> None:
    response = await client.post("/jobs/batch", json=[{"payload": i, "idempotency_key": f"b{i}"} for i in range(3)])

    assert response.status_code == 202
    ids = [job["id"] for job in response.json()["jobs"]]
    assert [store_of(app).get_job(job_id).payload for job_id in ids] == [0, 1, 2]
    repeat = await client.post("/jobs/batch", json=[{"payload": i, "idempotency_key": f"b{i}"} for i in range(3)])
    assert repeat.status_code == 200
    assert [job["id"] for job in repeat.json()["jobs"]] == ids


async def test_batch__one_bad_item_stores_none_and_names_it(app: FastAPI, client: httpx.AsyncClient) -> None:
    response = await client.post("/jobs/batch", json=[{"payload": 1}, {"payload": 2, "callback_url": "ftp://x/y"}])

    assert response.status_code == 422
    assert response.json()["errors"] == [
        {"field": "callback_url", "index": 1, "message": "'ftp://x/y' is not an http or https URL"}
    ]
    assert store_of(app).count_items() == 0


async def test_batch__reports_every_bad_item_at_once(app: FastAPI, client: httpx.AsyncClient) -> None:
    items = [{"payload": 0, "callback_url": "mailto:a@b"}, {"payload": 1}, {"payload": 2, "callback_url": "http://"}]

    response = await client.post("/jobs/batch", json=items)

    assert response.status_code == 422
    assert [(e["index"], e["field"]) for e in response.json()["errors"]] == [(0, "callback_url"), (2, "callback_url")]
    assert response.json()["detail"].startswith(
        "jobs[0].callback_url: 'mailto:a@b' is not an http or https URL; jobs[2]"
    )
    assert store_of(app).count_items() == 0


async def test_batch__idempotency_conflict_is_409_naming_the_items(app: FastAPI, client: httpx.AsyncClient) -> None:
    await client.post("/jobs", json={"payload": "first", "idempotency_key": "dup"})

    response = await client.post(
        "/jobs/batch", json=[{"payload": "new"}, {"payload": "other", "idempotency_key": "dup"}]
    )

    assert response.status_code == 409
    assert "idempotency key 'dup' in queue 'default' is already used" in response.json()["detail"]
    assert [e["index"] for e in response.json()["errors"]] == [1]
    assert store_of(app).count_items() == 1


async def test_read__shows_status_attempts_and_utc_timestamps(app: FastAPI, client: httpx.AsyncClient) -> None:
    job_id = (await client.post("/jobs", json={"payload": {"x": 1}})).json()["id"]

    body = (await client.get(f"/jobs/{job_id}")).json()

    assert body["id"] == job_id and body["status"] == "unprocessed" and body["attempts"] == 0
    assert body["payload"] == {"x": 1} and body["result"] is None and body["error"] is None
    parse_time(body["created_at"])
    assert body["started_at"] is None and body["finished_at"] is None and body["delivery"] is None


async def test_read__processed_job_has_result_and_callback_delivery(app: FastAPI, client: httpx.AsyncClient) -> None:
    submitted = await client.post("/jobs", json={"payload": 1, "callback_url": "http://127.0.0.1:9/hook"})
    store = store_of(app)
    claimed = store.get_item("worker-1")
    assert claimed is not None and claimed.id == submitted.json()["id"]
    store.update_status(claimed.id, Status.PROCESSED, lease_id=claimed.lease_id, result={"answer": 42})

    body = (await client.get(f"/jobs/{claimed.id}")).json()

    assert body["status"] == "processed" and body["attempts"] == 1 and body["result"] == {"answer": 42}
    assert parse_time(body["finished_at"]) >= parse_time(body["started_at"]) >= parse_time(body["created_at"])
    assert body["delivery"]["status"] == "pending" and body["delivery"]["url"] == "http://127.0.0.1:9/hook"


async def test_read__crashed_job_shows_its_error(app: FastAPI, client: httpx.AsyncClient) -> None:
    await client.post("/jobs", json={"payload": 1})
    store = store_of(app)
    claimed = store.get_item("worker-1")
    assert claimed is not None
    store.update_status(claimed.id, Status.CRASHED, lease_id=claimed.lease_id, error="ValueError: no readings")

    body = (await client.get(f"/jobs/{claimed.id}")).json()

    assert body["status"] == "crashed" and body["error"] == "ValueError: no readings" and body["result"] is None


async def test_read__failed_job_shows_its_last_error_and_the_operators_reason(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await client.post("/jobs", json={"payload": 1})
    store = store_of(app)
    claimed = store.get_item("worker-1")
    assert claimed is not None
    traceback = "Traceback (most recent call last):\n  File \"iqr.py\", line 3, in run\nKeyError: 'vendor'"
    store.update_status(claimed.id, Status.CRASHED, lease_id=claimed.lease_id, error=traceback)
    store.fail(claimed.id, "partner sent a bad field")

    body = (await client.get(f"/jobs/{claimed.id}")).json()

    assert body["status"] == "manual_intervention"
    assert (body["error"], body["operator_reason"]) == ("KeyError: 'vendor'", "partner sent a bad field")


async def test_read__unknown_id_is_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/jobs/424242")

    assert response.status_code == 404
    assert response.json() == {"detail": "job 424242 not found"}


async def test_list__pages_newest_first_with_filters(app: FastAPI, client: httpx.AsyncClient) -> None:
    ids = [(await client.post("/jobs", json={"payload": i, "queue": "pages"})).json()["id"] for i in range(5)]
    await client.post("/jobs", json={"payload": "elsewhere", "queue": "other"})

    first = (await client.get("/jobs", params={"queue": "pages", "limit": 3})).json()
    second = (await client.get("/jobs", params={"queue": "pages", "limit": 3, "cursor": first["next_cursor"]})).json()

    assert [job["id"] for job in first["jobs"]] == ids[::-1][:3]
    assert [job["id"] for job in second["jobs"]] == ids[::-1][3:]
    assert second["next_cursor"] is None
    running = (await client.get("/jobs", params=[("status", "under_process"), ("status", "processed")])).json()
    assert running == {"jobs": [], "next_cursor": None}


async def test_next__lists_waiting_jobs_in_run_order(client: httpx.AsyncClient) -> None:
    low = (await client.post("/jobs", json={"payload": "low", "priority": 5})).json()["id"]
    first = (await client.post("/jobs", json={"payload": "a", "priority": 0})).json()["id"]
    second = (await client.post("/jobs", json={"payload": "b", "priority": 0})).json()["id"]
    urgent = (await client.post("/jobs", json={"payload": "urgent", "priority": -1})).json()["id"]

    response = await client.get("/next", params={"limit": 3})

    assert response.status_code == 200
    assert [job["id"] for job in response.json()["jobs"]] == [urgent, first, second]
    everything = (await client.get("/next")).json()["jobs"]
    assert everything[-1]["id"] == low


async def test_healthz__answers_ok(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")

    assert (response.status_code, response.json()) == (200, {"status": "ok"})


async def test_metrics__expose_queue_and_request_counters(client: httpx.AsyncClient) -> None:
    await client.post("/jobs", json={"payload": 1})
    await client.post("/jobs", json={"payload": 1, "idempotency_key": "k"})
    await client.post("/jobs", json={"payload": 1, "idempotency_key": "k"})
    await client.post("/jobs", json={"payload": 1, "surprise": True})

    response = await client.get("/metrics")

    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    lines = set(response.text.splitlines())
    assert 'pq_jobs{queue="default",status="unprocessed"} 2.0' in lines
    assert 'pq_waiting_jobs{queue="default"} 2.0' in lines
    assert 'pq_running_jobs{queue="default"} 0.0' in lines
    assert 'pq_intake_accepted_total{outcome="created"} 2.0' in lines
    assert 'pq_intake_accepted_total{outcome="duplicate"} 1.0' in lines
    assert 'pq_intake_rejected_total{reason="invalid"} 1.0' in lines
    assert 'pq_callbacks{status="pending"} 0.0' in lines
    assert any(line.startswith("pq_oldest_waiting_seconds ") for line in lines)


async def test_metrics__manual_intervention_jobs_waiting_for_a_person_apart_from_those_an_operator_failed(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    store = store_of(app)
    refused = store.put_item({"n": 1}, max_attempts=1)
    run = store.get_item("worker-1")
    assert run is not None and run.id == refused
    store.update_status(refused, "crashed", lease_id=run.lease_id, error="ValueError: boom")  # out of attempts
    store.fail(store.put_item({"n": 2}), "partner sent a bad field")
    store.fail(store.put_item({"n": 3}, queue="reports"), "duplicate")
    store.cancel(store.put_item({"n": 4}), reason="partner withdrew it")  # cancelled, not manual_intervention

    lines = set((await client.get("/metrics")).text.splitlines())

    assert 'pq_jobs{queue="default",status="manual_intervention"} 2.0' in lines
    assert {
        'pq_manual_intervention_jobs{kind="waiting_for_a_person",queue="default"} 1.0',
        'pq_manual_intervention_jobs{kind="failed_by_an_operator",queue="default"} 1.0',
        'pq_manual_intervention_jobs{kind="waiting_for_a_person",queue="reports"} 0.0',
        'pq_manual_intervention_jobs{kind="failed_by_an_operator",queue="reports"} 1.0',
    } <= lines


async def test_metrics__report_each_queues_stored_policy(app: FastAPI, client: httpx.AsyncClient) -> None:
    store_of(app).set_queue_policy("remote", max_attempts=2, job_timeout=4, lease_seconds=12)
    await client.post("/jobs", json={"payload": 1})

    lines = set((await client.get("/metrics")).text.splitlines())

    assert {'pq_queue_max_attempts{queue="remote"} 2.0', 'pq_queue_job_timeout_seconds{queue="remote"} 4.0'} <= lines
    assert 'pq_queue_lease_seconds{queue="remote"} 12.0' in lines
    assert 'pq_queue_retry_backoff_seconds{queue="remote"} 10.0' in lines
    assert 'pq_queue_max_attempts{queue="default"} 3.0' in lines, "never set: the PQ_ default"


async def test_relay_go__resumes_the_queue_the_relay_waits_on_and_names_it(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    store = store_of(app)
    store.pause("nc4orders")  # pq-relay --wait-for-go --queue nc4orders, registered
    store.register_worker("relay-1", kind="relay", queue="nc4orders", host="h", pid=1)

    response = await client.post("/relay/go")

    assert response.status_code == 200
    assert response.json() == {"name": "nc4orders", "seats": 1, "paused": False}
    assert {q.name: q.paused for q in store.queues()} == {"nc4orders": False}, "no other queue made"


async def test_relay_go__an_unknown_or_ambiguous_queue_is_one_line_and_changes_nothing(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    store = store_of(app)
    nobody = await client.post("/relay/go")
    unknown = await client.post("/relay/go", params={"queue": "remote"})
    for name in ("a", "b"):
        store.pause(name)
        store.register_worker(f"relay-{name}", kind="relay", queue=name, host="h", pid=1)
    several = await client.post("/relay/go")
    named = await client.post("/relay/go", params={"queue": "b"})

    assert nobody.status_code == 404 and nobody.json()["detail"] == (
        "no relay is registered, so no queue waits for a go; name the queue"
    )
    assert unknown.status_code == 404 and unknown.json()["detail"] == (
        "queue 'remote' does not exist; a go resumes a queue, it never creates one"
    )
    assert several.status_code == 409
    assert several.json()["detail"] == "several queues wait for a go (a, b); name the one to go"
    assert named.json() == {"name": "b", "seats": 1, "paused": False}
    assert {q.name: q.paused for q in store.queues()} == {"a": True, "b": False}


async def test_relay_go__get_is_refused_in_one_line_naming_the_method(client: httpx.AsyncClient) -> None:
    response = await client.get("/relay/go")

    assert response.status_code == 405 and response.headers["allow"] == "POST"
    assert response.json() == {"detail": "GET /relay/go is not allowed; use POST (see /docs)"}


async def test_docs__describe_the_api(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    docs = await client.get("/docs")

    assert {"/jobs", "/jobs/batch", "/jobs/{job_id}", "/next", "/healthz", "/metrics"} <= set(schema["paths"])
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
