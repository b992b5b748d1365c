"""Document 000, the CPDSS / FastAPI design, in its own words: CPDSS sends JSON over HTTPS, the
API answers an acknowledgement id at once and stores the request; the algorithm module (its IQR
by vendor) takes one request at a time under its licence; a request running for more than an
hour is killed; the output goes back to CPDSS over HTTPS. Real pq-producer serving HTTPS, real
pq-consumer, and CPDSS as a real HTTPS server that receives the results."""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme

from tests.callbacks.partner import Partner
from tests.local_system import LocalSystem, local_system
from tests.programs import Process, Programs, stop_program
from tests.support import wait_until

pytestmark = [pytest.mark.process, pytest.mark.timeout(300)]

READINGS = [{"vendor": "singapore-wd", "value": v} for v in (10.0, 11.0, 12.0, 11.5, 10.5, 95.0)]


@pytest.fixture
def authority() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def cpdss(authority: trustme.CA) -> Iterator[Partner]:
    """CPDSS's own HTTPS endpoint, which receives the output."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(context)
    server = Partner(ssl_context=context).start()
    yield server
    server.stop()


@pytest.fixture
def trusted(authority: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    authority.configure_trust(context)
    return context


@pytest.fixture
def tls_env(db_env: dict[str, str], authority: trustme.CA, tmp_path: Path) -> dict[str, str]:
    """The intake's certificate, and the authority the consumer trusts for CPDSS's."""
    certificate = authority.issue_cert("127.0.0.1")
    certfile, keyfile, bundle = tmp_path / "intake.pem", tmp_path / "intake.key", tmp_path / "cpdss-ca.pem"
    certificate.private_key_pem.write_to_path(str(keyfile))
    certificate.cert_chain_pems[0].write_to_path(str(certfile))
    authority.cert_pem.write_to_path(str(bundle))
    return {
        **db_env,
        "PQ_TLS_CERTFILE": str(certfile),
        "PQ_TLS_KEYFILE": str(keyfile),
        "PQ_CALLBACK_CA_BUNDLE": str(bundle),
        "PQ_CALLBACK_BACKOFF_SECONDS": "0.2",
        "PQ_RETRY_BACKOFF_SECONDS": "0.1",
    }


@pytest.fixture
def system(
    tls_env: dict[str, str], trusted: ssl.SSLContext, programs: Programs, tmp_path: Path
) -> Iterator[LocalSystem]:
    with local_system(programs, tls_env, tmp_path / "logs", consumer=False, verify=trusted) as running:
        yield running


def send(system: LocalSystem, trusted: ssl.SSLContext, payload: Any, callback: str) -> httpx.Response:
    """CPDSS -> https request (json) -> the API."""
    return httpx.post(
        f"{system.url}/jobs", json={"payload": payload, "callback_url": callback}, verify=trusted, timeout=30
    )


def received(cpdss: Partner) -> dict[int, dict[str, Any]]:
    """What CPDSS got back, by acknowledgement id."""
    bodies = [json.loads(request.body) for request in cpdss.requests()]
    return {body["id"]: body for body in bodies}


def consumer(programs: Programs, system: LocalSystem, name: str, **env: str) -> Process:
    return programs.start("pq-consumer", env={**system.env, **env}, log=f"{name}.log")


def test_https_request__acknowledged_then_one_at_a_time_then_the_output_back_over_https(
    system: LocalSystem, cpdss: Partner, trusted: ssl.SSLContext, programs: Programs
) -> None:
    # "when req frm fast api >>> ackn >>> insert data into queue tables >>> ackn to cpdss"
    acks = []
    for n in range(3):
        answer = send(system, trusted, {"readings": READINGS, "request": n}, cpdss.url())
        assert answer.status_code == 202, answer.text
        assert answer.json()["status"] == "unprocessed" and isinstance(answer.json()["id"], int)
        acks.append(answer.json()["id"])
    with pytest.raises(httpx.HTTPError):
        httpx.get(system.url.replace("https://", "http://") + "/healthz", timeout=10)  # HTTPS only

    # "algo cannot take more than 1 request at a time": the licence's one seat.
    algo = consumer(programs, system, "algo")
    try:
        wait_until(lambda: len(received(cpdss)) == 3, timeout=180, what="three outputs back at CPDSS")
    finally:
        stop_program(algo)
    outputs = received(cpdss)
    for ack in acks:
        assert outputs[ack]["status"] == "processed", outputs[ack]
        [outlier] = outputs[ack]["result"]["vendors"]["singapore-wd"]["outliers"]  # the IQR by vendor
        assert outlier == {"index": 5, "value": 95.0}
    runs = sorted(
        (job["started_at"], job["finished_at"])
        for job in (httpx.get(f"{system.url}/jobs/{ack}", verify=trusted).json() for ack in acks)
    )
    assert all(earlier[1] <= later[0] for earlier, later in zip(runs, runs[1:], strict=False)), runs


def test_a_request_running_past_the_limit_is_killed_and_cpdss_told(
    system: LocalSystem, cpdss: Partner, trusted: ssl.SSLContext, programs: Programs
) -> None:
    # "if request more than 1 hr , >>> kill it": PQ_JOB_TIMEOUT (3600 s), 3 s here.
    ack = send(system, trusted, {"seconds": 3600}, cpdss.url()).json()["id"]
    algo = consumer(programs, system, "algo", PQ_ALGORITHM="consumer.algorithms.sleep:run", PQ_JOB_TIMEOUT="3")
    try:
        wait_until(lambda: ack in received(cpdss), timeout=120, what="CPDSS told of the killed request")
    finally:
        stop_program(algo)
    told = received(cpdss)[ack]
    assert told["status"] == "manual_intervention" and "timeout" in told["error"].lower(), told
    job = httpx.get(f"{system.url}/jobs/{ack}", verify=trusted).json()
    assert job["status"] == "manual_intervention" and job["attempts"] == 1


def test_bad_json_is_one_clear_error_and_stores_nothing(system: LocalSystem, trusted: ssl.SSLContext) -> None:
    refused = httpx.post(
        f"{system.url}/jobs", content=b"{not json", headers={"content-type": "application/json"}, verify=trusted
    )
    assert refused.status_code == 400, refused.text
    assert refused.json()["detail"].startswith("the body is not valid JSON")
    assert httpx.get(f"{system.url}/jobs", verify=trusted).json()["jobs"] == []
