"""Partners through the real `pq-producer` over HTTP, on SQLite and PostgreSQL.

A partner reads, lists, cancels and learns of its own jobs only: another partner's job is
answered byte for byte as an unknown id. Keys are checked, scoped, rotated, expired and revoked,
and only their digest is stored; a partner over its rate is refused with the IETF headers;
PQ_API_TOKEN, an admin key and an open intake keep working.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import string
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy

from pqueue import PersistentQ, Status
from tests.producer.support import Launch
from tests.support import wait_until

pytestmark = [pytest.mark.process, pytest.mark.timeout(240)]

TOKEN = "the-old-shared-token"


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def client(url: str, key: str | None = None) -> httpx.Client:
    return httpx.Client(base_url=url, headers=bearer(key) if key else None, timeout=30)


def ids(page: httpx.Response) -> set[int]:
    assert page.status_code == 200, page.text
    return {job["id"] for job in page.json()["jobs"]}


def without_date(response: httpx.Response) -> tuple[int, list[tuple[str, str]], bytes]:
    """Everything a client can see of an answer, but its Date header."""
    headers = [(name, value) for name, value in response.headers.items() if name != "date"]
    return response.status_code, headers, response.content


def test_isolation__another_partner_never_reads_lists_cancels_or_learns_a_job(q: PersistentQ, launch: Launch) -> None:
    q.add_partner("acme")
    q.add_partner("beta")
    acme_key, beta_key = q.create_key("acme").key, q.create_key("beta").key
    admin_key = q.create_key("default", scopes=["admin"]).key
    _, url = launch()
    acme, beta, admin = client(url, acme_key), client(url, beta_key), client(url, admin_key)

    submission = {"payload": {"secret": "acme only"}, "queue": "shared", "idempotency_key": "k-1"}
    first = acme.post("/jobs", json=submission)
    private = acme.post("/jobs", json={"payload": 2, "queue": "acme-private-queue"})
    assert (first.status_code, private.status_code) == (202, 202)
    job, private_job = first.json()["id"], private.json()["id"]

    # The same submission with the same idempotency key from another partner: a second job.
    same_key = beta.post("/jobs", json=submission)
    other_payload = beta.post("/jobs", json={"payload": "beta's", "queue": "shared", "idempotency_key": "k-2"})
    assert (same_key.status_code, other_payload.status_code) == (202, 202)
    beta_jobs = {same_key.json()["id"], other_payload.json()["id"]}
    assert job not in beta_jobs and same_key.headers["location"] != f"/jobs/{job}"
    again = beta.post("/jobs", json=submission)
    assert again.status_code == 200 and again.json()["id"] == same_key.json()["id"]
    assert q.count_items(partner="acme") == 2 and q.count_items(partner="beta") == 2

    # Reads, lists, the line: beta sees its own jobs only, and acme's queue name nowhere.
    read = beta.get(f"/jobs/{job}")
    cancel = beta.post(f"/jobs/{job}/cancel")
    calculated = beta.get(f"/get_answer/{job}")  # the calculate service's read (docs/seeds.md)
    assert (read.status_code, cancel.status_code, calculated.status_code) == (404, 404, 404)
    assert beta.get("/go/").status_code == 403 and beta.post("/relay/go").status_code == 403
    assert ids(beta.get("/jobs")) == beta_jobs
    assert ids(beta.get("/jobs", params={"queue": "shared", "status": "unprocessed"})) == beta_jobs
    assert ids(beta.get("/jobs", params={"queue": "acme-private-queue"})) == set()
    assert ids(beta.get("/jobs", params={"partner": "beta"})) == beta_jobs
    assert ids(beta.get("/next", params={"limit": 100})) == beta_jobs
    assert ids(beta.get("/next", params={"queue": "acme-private-queue"})) == set()
    asked_for_acme = beta.get("/jobs", params={"partner": "acme"})
    assert asked_for_acme.status_code == 403 and "admin" in asked_for_acme.json()["detail"]
    assert beta.get("/next", params={"partner": "acme"}).status_code == 403
    metrics = beta.get("/metrics").text
    assert "acme" not in metrics and "secret" not in metrics
    assert 'pq_jobs{queue="shared",status="unprocessed"} 2.0' in metrics
    assert 'pq_other_partners_jobs{queue="shared",status="unprocessed"} 1.0' in metrics
    for answer in [beta.get("/jobs"), beta.get("/next"), same_key, other_payload, again]:
        assert "partner" not in answer.text  # a partner's answers never name partners
    assert q.get_job(job).status == Status.UNPROCESSED  # the refused cancel changed nothing

    # acme still has its job; an admin key sees every partner's, named.
    assert acme.get(f"/jobs/{job}").json()["payload"] == {"secret": "acme only"}
    assert "partner" not in acme.get(f"/jobs/{job}").json()
    assert ids(acme.get("/jobs")) == {job, private_job}
    everything = admin.get("/jobs").json()["jobs"]
    assert {(found["id"], found["partner"]) for found in everything} == {
        (job, "acme"),
        (private_job, "acme"),
        *((beta_job, "beta") for beta_job in beta_jobs),
    }
    assert ids(admin.get("/jobs", params={"partner": "acme"})) == {job, private_job}
    assert admin.get(f"/jobs/{job}").json()["partner"] == "acme"
    assert {found["partner"] for found in admin.get("/next").json()["jobs"]} == {"acme", "beta"}
    assert 'pq_jobs{queue="acme-private-queue",status="unprocessed"} 1.0' in admin.get("/metrics").text

    # The 404s beta got are byte for byte those of an id that does not exist: make it not exist.
    assert acme.post(f"/jobs/{job}/cancel").json()["status"] == "cancelled"
    q.clock_offset += timedelta(seconds=10)
    assert q.purge(1, [Status.CANCELLED]) == 1
    assert without_date(beta.get(f"/jobs/{job}")) == without_date(read)
    assert without_date(beta.post(f"/jobs/{job}/cancel")) == without_date(cancel)
    assert without_date(beta.get(f"/get_answer/{job}")) == without_date(calculated)

    # The calculate service submits as the caller's partner too.
    calculation = beta.get("/calculate/1/2").json()["unique_identifier"]
    assert q.get_job(calculation).partner == "beta" and acme.get(f"/get_answer/{calculation}").status_code == 404
    assert without_date(acme.get(f"/jobs/{job}")) == without_date(read)


def test_keys__created_used_rotated_expired_revoked_and_only_their_digest_stored(
    q: PersistentQ, launch: Launch, db_env: dict[str, str], tmp_path: Path
) -> None:
    q.add_partner("acme")
    first = q.create_key("acme", name="acme's system")
    _, url = launch()
    stored_before = q.count_items()

    def status(key: str, method: str = "POST") -> tuple[int, str]:
        answer = client(url, key).request(method, "/jobs", json={"payload": 1} if method == "POST" else None)
        return answer.status_code, answer.json().get("detail", "")

    def refused(key: str, reason: str) -> None:
        """Polls with reads (a key still working until its refusal reaches the intake stores nothing)."""
        wait_until(lambda: status(key, "GET") == (401, reason), timeout=60, what=f"401 {reason!r}")

    assert status(first.key)[0] == 202

    # Rotation with a grace: both work; rotating again with no grace ends the second at once.
    second = q.rotate_key(first.info.id, grace_seconds=3600)
    assert status(first.key)[0] == 202 and status(second.key)[0] == 202
    third = q.rotate_key(second.info.id, grace_seconds=0)
    refused(second.key, f"key {second.info.id} has expired")
    assert status(first.key)[0] == 202 and status(third.key)[0] == 202

    # Expiry, revocation, a disabled partner.
    short = q.create_key("acme", expires_in_seconds=0.001)
    refused(short.key, f"key {short.info.id} has expired")
    q.revoke_key(first.info.id)
    refused(first.key, f"key {first.info.id} was revoked")
    assert status(third.key)[0] == 202
    q.disable_partner("acme")
    refused(third.key, "partner 'acme' is disabled")
    q.disable_partner("acme", enable=True)
    wait_until(lambda: status(third.key)[0] == 202, timeout=60, what="the enabled partner's key to work again")

    # Keys that never worked.
    unknown = "pq_" + "a" * 12 + "_" + "".join(secrets.choice(string.ascii_letters) for _ in range(43))
    assert status(unknown) == (401, "the key is not known here")
    assert status("pq_not_a_key") == (401, "the key is malformed: a pqueue key reads pq_<id>_<secret>")
    plain = httpx.post(f"{url}/jobs", json={"payload": 1})
    basic = httpx.post(f"{url}/jobs", json={"payload": 1}, headers={"Authorization": f"Basic {third.key}"})
    assert (plain.status_code, basic.status_code) == (401, 401)
    assert plain.json() == {"detail": "this intake needs an Authorization: Bearer <key> header with your partner key"}
    assert plain.headers["www-authenticate"] == "Bearer"
    accepted = 1 + 2 + 2 + 1 + 1  # every 202 above
    assert q.count_items() == stored_before + accepted  # no refused request stored anything

    keys = [first, second, third, short]
    _assert_only_digests_stored(q, db_env, [key.key for key in keys])
    for log in tmp_path.glob("producer-*.log"):
        assert not any(key.key in log.read_text() for key in keys)


def _assert_only_digests_stored(q: PersistentQ, db_env: dict[str, str], keys: list[str]) -> None:
    digests = [hashlib.sha256(key.encode()).hexdigest() for key in keys]
    if db_env["PQ_DATABASE_URL"].startswith("sqlite"):
        q.close()  # checkpoint: the file holds everything
        database = Path(db_env["PQ_DATABASE_URL"].removeprefix("sqlite:///"))
        files = b"".join(path.read_bytes() for path in database.parent.glob(database.name + "*"))
        assert not any(key.encode() in files for key in keys)
        assert all(digest.encode() in files for digest in digests)
        return
    engine = sqlalchemy.create_engine(db_env["PQ_DATABASE_URL"])
    try:
        with engine.connect() as conn:
            schema = db_env["PQ_DB_SCHEMA"]
            dump = "".join(
                str(row)
                for table in ("pq_api_keys", "pq_partner_events", "pq_partners")
                for row in conn.exec_driver_sql(f'SELECT * FROM "{schema}".{table}')
            )
    finally:
        engine.dispose()
    assert not any(key in dump for key in keys)
    assert all(digest in dump for digest in digests)


def test_scopes__a_key_without_the_routes_scope_gets_403_and_nothing_changes(q: PersistentQ, launch: Launch) -> None:
    q.add_partner("acme")
    reader = q.create_key("acme", scopes=["read"]).key
    submitter = q.create_key("acme", scopes=["submit"]).key
    admin = q.create_key("default", scopes=["admin"]).key
    job = q.put_item({"n": 1}, partner="acme")
    _, url = launch()

    refused: dict[str, list[tuple[str, str, Any]]] = {
        reader: [("POST", "/jobs", {"payload": 1}), ("POST", "/jobs/batch", [{"payload": 1}])]
        + [("POST", f"/jobs/{job}/cancel", None), ("POST", "/relay/go", None)],
        submitter: [("GET", f"/jobs/{job}", None), ("GET", "/jobs", None), ("GET", "/next", None)]
        + [("GET", "/metrics", None), ("POST", f"/jobs/{job}/cancel", None)],
    }
    for key, requests in refused.items():
        for method, path, body in requests:
            answer = client(url, key).request(method, path, json=body)
            scope = {"POST /jobs": "submit", "POST /jobs/batch": "submit", "POST /relay/go": "admin"}.get(
                f"{method} {path}", "cancel" if path.endswith("/cancel") else "read"
            )
            assert answer.status_code == 403, (method, path, answer.text)
            assert answer.json() == {
                "detail": f"this key may not do that: it needs the {scope!r} scope, and has "
                + ("read" if key == reader else "submit")
            }
            assert answer.headers["www-authenticate"] == f'Bearer error="insufficient_scope", scope="{scope}"'
    assert q.count_items() == 1 and q.get_job(job).status == Status.UNPROCESSED

    assert client(url, reader).get(f"/jobs/{job}").status_code == 200
    assert client(url, submitter).post("/jobs", json={"payload": 2}).status_code == 202
    q.pause("default")
    went = client(url, admin).post("/relay/go", params={"queue": "default"})
    assert went.status_code == 200 and went.json()["paused"] is False, went.text


def test_rate__over_its_rate_a_partner_gets_429_with_the_ratelimit_headers_and_nothing_is_stored(
    q: PersistentQ, launch: Launch
) -> None:
    q.add_partner("acme", rate_per_minute=2)
    q.add_partner("beta")
    acme, beta = q.create_key("acme").key, q.create_key("beta").key
    _, url = launch()

    answers = [client(url, acme).post("/jobs", json={"payload": n}) for n in range(3)]
    assert [answer.status_code for answer in answers] == [202, 202, 429]
    assert answers[0].headers["ratelimit-policy"] == '"submit";q=2;w=60'
    assert re.fullmatch(r'"submit";r=1;t=\d+', answers[0].headers["ratelimit"])
    over = answers[2]
    retry_after = int(over.headers["retry-after"])
    assert 1 <= retry_after <= 60
    assert over.headers["ratelimit-policy"] == '"submit";q=2;w=60'
    assert over.headers["ratelimit"] == f'"submit";r=0;t={retry_after}'
    assert over.json() == {
        "detail": "partner 'acme' may submit 2 jobs a minute and is over that rate; nothing was stored; "
        f"send this job again in {retry_after} s"
    }
    batch = client(url, acme).post("/jobs/batch", json=[{"payload": n} for n in range(3)])
    assert batch.status_code == 422 and "smaller batches" in batch.json()["detail"]
    assert client(url, acme).post("/jobs/batch", json=[{"payload": 9}]).status_code == 429
    assert q.count_items(partner="acme") == 2

    # Another partner has its own rate (none here), and reading is never limited.
    assert all(client(url, beta).post("/jobs", json={"payload": n}).status_code == 202 for n in range(5))
    assert "ratelimit" not in client(url, beta).post("/jobs", json={"payload": 5}).headers
    assert client(url, acme).get("/jobs").status_code == 200


def test_token__pq_api_token_is_a_key_of_default_beside_partner_keys(q: PersistentQ, launch: Launch) -> None:
    q.add_partner("acme")
    acme_key = q.create_key("acme").key
    _, url = launch({"PQ_API_TOKEN": TOKEN})
    token, acme = client(url, TOKEN), client(url, acme_key)

    mine = token.post("/jobs", json={"payload": 1})
    theirs = acme.post("/jobs", json={"payload": 2})
    assert (mine.status_code, theirs.status_code) == (202, 202)
    assert q.get_job(mine.json()["id"]).partner == "default"
    assert token.get(f"/jobs/{mine.json()['id']}").status_code == 200
    assert token.get(f"/jobs/{theirs.json()['id']}").status_code == 404
    assert ids(token.get("/jobs")) == {mine.json()["id"]}
    assert token.post(f"/jobs/{mine.json()['id']}/cancel").json()["status"] == "cancelled"
    assert token.post("/relay/go").status_code == 403  # an operator's action: an admin key or `pq`
    wrong = client(url, "not-the-token").get("/jobs")
    assert wrong.status_code == 401 and "not the one this intake accepts" in wrong.json()["detail"]


def test_open__an_open_intake_asks_for_keys_once_the_first_key_exists(q: PersistentQ, launch: Launch) -> None:
    _, url = launch()
    open_answer = httpx.post(f"{url}/jobs", json={"payload": 1})
    assert open_answer.status_code == 202
    assert client(url, "anything at all").post("/jobs", json={"payload": 1}).status_code == 202  # as before keys
    read: dict[str, Any] = httpx.get(f"{url}/jobs/{open_answer.json()['id']}").json()
    assert read["partner"] == "default"  # an open intake's caller is its operator (admin)
    schema = httpx.get(f"{url}/openapi.json").json()
    assert schema["paths"]["/jobs"]["get"]["security"] == [{"bearer": ["read"]}, {}]

    q.add_partner("acme")
    key = q.create_key("acme").key
    at_once = client(url, key).post("/jobs", json={"payload": 2})  # a new key works at once, as its partner's
    assert at_once.status_code == 202 and q.get_job(at_once.json()["id"]).partner == "acme"
    assert httpx.post(f"{url}/jobs", json={"payload": 3}).status_code == 401  # and from then on, one is needed
    assert ids(client(url, key).get("/jobs")) == {at_once.json()["id"]}
    schema = client(url, key).get("/openapi.json").json()
    assert schema["paths"]["/jobs"]["get"]["security"] == [{"bearer": ["read"]}]
    assert httpx.get(f"{url}/healthz").status_code == 200
