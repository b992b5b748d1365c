"""The real `pq-producer` program: served on a free port, over HTTPS, refusing unsafe starts,
and killed with SIGKILL in the middle of a burst without losing an acknowledged job."""

from __future__ import annotations

import os
import signal
import ssl
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import trustme

import pqueue
from tests.support import BIN, free_port, start, stop, wait_until

pytestmark = [pytest.mark.process, pytest.mark.timeout(180)]
Launch = Callable[..., tuple[subprocess.Popen[bytes], str]]


@pytest.fixture
def launch(db_env: dict[str, str], tmp_path: Path) -> Iterator[Launch]:
    """Start pq-producer on a free port with the test database (plus extra PQ_* variables) and
    wait until /healthz answers; every process started is stopped afterwards."""
    started: list[subprocess.Popen[bytes]] = []

    def run(
        extra_env: dict[str, str] | None = None, scheme: str = "http", verify: ssl.SSLContext | bool = False
    ) -> tuple[subprocess.Popen[bytes], str]:
        port = free_port()
        env = {**db_env, **(extra_env or {})}
        process = start([str(BIN / "pq-producer"), "--port", str(port)], env, tmp_path / f"producer-{port}.log")
        started.append(process)
        url = f"{scheme}://127.0.0.1:{port}"

        def healthy() -> bool:
            if process.poll() is not None:
                log = (tmp_path / f"producer-{port}.log").read_text()
                raise AssertionError(f"pq-producer exited with {process.returncode}:\n{log}")
            try:
                return httpx.get(f"{url}/healthz", verify=verify, timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        try:
            wait_until(healthy, timeout=90, interval=0.1, what="pq-producer to answer /healthz")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; its log:\n{(tmp_path / f'producer-{port}.log').read_text()}") from None
        return process, url

    yield run
    for process in started:
        stop(process)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_pq_producer__stores_and_reads_jobs_over_http(launch: Launch, db_env: dict[str, str], tmp_path: Path) -> None:
    process, url = launch()

    submitted = httpx.post(f"{url}/jobs", json={"payload": {"readings": [1]}, "idempotency_key": "p-1"})
    read = httpx.get(f"{url}/jobs/{submitted.json()['id']}")

    assert submitted.status_code == 202
    assert read.status_code == 200 and read.json()["payload"] == {"readings": [1]}
    log = (tmp_path / f"producer-{url.rsplit(':', 1)[1]}.log").read_text()
    assert "database " in log and " opened" in log  # the database it opened is named in the log


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_pq_demo_feeder__submits_sample_jobs(launch: Launch, db_env: dict[str, str], tmp_path: Path) -> None:
    _, url = launch()
    env = {**db_env, "PQ_INBOX_DIR": str(tmp_path / "inbox")}
    feeders = [
        start(
            [str(BIN / "pq-demo-feeder"), "--kind", kind, "--interval", "0.05", "--count", "2", "--url", url],
            env,
            tmp_path / f"feeder-{kind}.log",
        )
        for kind in ("iqr", "files")
    ]
    try:
        assert [feeder.wait(90) for feeder in feeders] == [0, 0]
    finally:
        for feeder in feeders:
            stop(feeder)

    jobs = httpx.get(f"{url}/jobs", params={"limit": 10}).json()["jobs"]
    payloads = [httpx.get(f"{url}/jobs/{job['id']}").json()["payload"] for job in jobs]
    assert len(payloads) == 4
    files = [p["file"] for p in payloads if "file" in p]
    assert len(files) == 2 and all((tmp_path / "inbox" / name).is_file() for name in files)
    assert all({"vendor", "value"} <= set(reading) for p in payloads if "readings" in p for reading in p["readings"])


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_pq_producer__serves_https_with_the_configured_certificate(launch: Launch, tmp_path: Path) -> None:
    authority = trustme.CA()
    certificate = authority.issue_cert("127.0.0.1", "localhost")
    certfile, keyfile = tmp_path / "intake.pem", tmp_path / "intake.key"
    certificate.private_key_pem.write_to_path(str(keyfile))
    certificate.cert_chain_pems[0].write_to_path(str(certfile))
    trusted = ssl.create_default_context()
    authority.configure_trust(trusted)

    _, url = launch({"PQ_TLS_CERTFILE": str(certfile), "PQ_TLS_KEYFILE": str(keyfile)}, "https", trusted)
    submitted = httpx.post(f"{url}/jobs", json={"payload": 1}, verify=trusted)

    assert url.startswith("https://") and submitted.status_code == 202
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{url}/healthz", verify=ssl.create_default_context())  # an unknown CA is refused
    with pytest.raises(httpx.HTTPError):
        httpx.get(url.replace("https://", "http://") + "/healthz")  # no plain HTTP on the port


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_pq_producer__refuses_a_public_host_without_token(db_env: dict[str, str], tmp_path: Path) -> None:
    args = [str(BIN / "pq-producer"), "--host", "192.0.2.10", "--port", str(free_port())]
    process = start(args, db_env, tmp_path / "p.log")
    try:
        code = process.wait(60)
    finally:
        stop(process)

    output = (tmp_path / "p.log").read_text()
    assert code != 0 and "refusing to listen on 192.0.2.10 without PQ_API_TOKEN" in output
    assert "Traceback" not in output


BURST = 2000
CLIENTS = 8


def test_pq_producer__sigkill_mid_burst_loses_no_acknowledged_job(
    launch: Launch, make_settings: Callable[..., pqueue.Settings]
) -> None:
    process, url = launch()
    acknowledged: dict[int, int] = {}
    lock = threading.Lock()
    numbers = iter(range(BURST))

    def client() -> None:
        with httpx.Client(base_url=url, timeout=30) as http:
            while True:
                with lock:
                    n = next(numbers, None)
                if n is None:
                    return
                try:
                    response = http.post("/jobs", json={"payload": {"n": n}})
                except httpx.HTTPError:
                    return  # the intake is gone
                if response.status_code == 202:
                    with lock:
                        acknowledged[response.json()["id"]] = n

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    wait_until(lambda: len(acknowledged) >= BURST // 4, timeout=120, what="a quarter of the burst acknowledged")
    os.killpg(process.pid, signal.SIGKILL)
    for thread in threads:
        thread.join(60)

    assert BURST // 4 <= len(acknowledged) < BURST  # killed in the middle
    store = pqueue.connect(settings=make_settings())
    try:
        stored = {job.id: job.payload["n"] for job in _all_jobs(store)}
    finally:
        store.close()
    missing = {job_id: n for job_id, n in acknowledged.items() if stored.get(job_id) != n}
    assert not missing, f"{len(missing)} acknowledged jobs are not stored as sent"


def _all_jobs(store: pqueue.PersistentQ) -> Iterator[pqueue.Job]:
    cursor = None
    while True:
        page = store.get_all_items(limit=1000, cursor=cursor)
        yield from page.items
        if page.next_cursor is None:
            return
        cursor = page.next_cursor
