"""The submitter's view over HTTP (real `pq-producer`): `wait` on a waiting job's GET /jobs/{id},
none on a finished one, /next in predicted order with the same fields, the calculate service's
"please wait" with it, and another partner never named in it."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest

from pqueue import PersistentQ
from tests.producer.support import Launch
from tests.support import wait_until

pytestmark = [pytest.mark.process, pytest.mark.timeout(240)]


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def run(q: PersistentQ, seconds: float, queue: str | None = None) -> None:
    job = q.get_item("w", queue=queue)
    assert job is not None
    q.clock_offset += timedelta(seconds=seconds)
    q.update_status(job.id, "processed", lease_id=job.lease_id, result={"sum": 3})


def test_wait__on_waiting_jobs_and_next_in_predicted_order_never_naming_others(q: PersistentQ, launch: Launch) -> None:
    q.add_partner("acme")
    q.add_partner("beta")
    acme_key, beta_key = q.create_key("acme").key, q.create_key("beta").key
    _, url = launch()
    acme = httpx.Client(base_url=url, headers=bearer(acme_key), timeout=30)
    beta = httpx.Client(base_url=url, headers=bearer(beta_key), timeout=30)
    done = acme.post("/jobs", json={"payload": {"n": 0}}).json()["id"]
    run(q, 0)
    beta_job = beta.post("/jobs", json={"payload": {"secret": "beta only"}}).json()["id"]
    acme_jobs = [acme.post("/jobs", json={"payload": {"n": n}, "priority": -n}).json()["id"] for n in (1, 2)]

    q.register_worker("consumer-1", kind="consumer", queue="default", host="here", pid=1)
    finished = acme.get(f"/jobs/{done}").json()
    assert finished["status"] == "processed" and "wait" not in finished
    waiting = acme.get(f"/jobs/{acme_jobs[0]}").json()
    wait = waiting["wait"]
    assert wait["position"] == {"own": 1, "others": 1, "total": 2, "exact": True}
    assert {"p50", "p90", "latest"} <= wait["eta_start"].keys() and wait["eta_finish"]["latest"]
    assert [reason["code"] for reason in wait["reasons"]] == ["behind_own_jobs", "fair_share"]
    assert wait["confidence"] in ("low", "medium", "high") and wait["computed_at"]
    line = acme.get("/next", params={"limit": 10}).json()["jobs"]
    assert [job["id"] for job in line] == [acme_jobs[1], acme_jobs[0]]  # the urgent one first
    assert [job["wait"]["position"]["total"] for job in line] == [1, 2]
    for text in (acme.get(f"/jobs/{acme_jobs[0]}").text, acme.get("/next").text):
        assert "beta" not in text and 'partner"' not in text and f'"id":{beta_job}' not in text
    assert beta.get(f"/jobs/{acme_jobs[0]}").status_code == 404


def test_get_answer__please_wait_carries_the_wait(q: PersistentQ, launch: Launch) -> None:
    _, url = launch()
    with httpx.Client(base_url=url, timeout=30) as client:
        identifier = client.get("/calculate/1/2").json()["unique_identifier"]
        answer = client.get(f"/get_answer/{identifier}").json()
        assert answer["message"].startswith("please wait") and answer["wait"]["position"]["total"] == 0
        run(q, 1, queue="calculate")
        answer = client.get(f"/get_answer/{identifier}").json()
        assert answer["answer"] == 3 and "wait" not in answer


def test_calibration__the_intake_records_predictions_and_metrics_show_how_they_fared(
    q: PersistentQ, launch: Launch
) -> None:
    for _ in range(5):  # a history of 20 s runs, so that the predictions have a p90
        q.put_item({"seed": True})
        run(q, 20)
    q.clock_offset = timedelta(0)  # the intake's clock
    q.register_worker("consumer-1", kind="consumer", queue="default", host="here", pid=1)
    q.put_item({"long": True})
    long_one = q.get_item("w")  # holds the seat, so the next job waits to be predicted
    assert long_one is not None
    _, url = launch()
    with httpx.Client(base_url=url, timeout=30) as client:
        job = client.post("/jobs", json={"payload": {"n": 1}}).json()["id"]
        wait_until(lambda: q.calibration(), timeout=120, what="the intake recorded the job's prediction")
        assert [(c.queue, c.predicted, c.started) for c in q.calibration()] == [("default", 1, 0)]
        q.clock_offset = timedelta(seconds=10)  # the long one ends well before its predicted p50
        q.update_status(long_one.id, "processed", lease_id=long_one.lease_id, result={"sum": 3})
        run(q, 1)
        assert q.get_job(job).status == "processed"
        metrics = client.get("/metrics").text
    assert 'pq_wait_started_before_p90_ratio{queue="default"} 1.0' in metrics
    assert 'pq_wait_started_before_latest_ratio{queue="default"} 1.0' in metrics
    assert 'pq_wait_predictions_started{queue="default"} 1.0' in metrics
