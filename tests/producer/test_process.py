"""The real `pq-producer` program: served on a free port, over HTTPS, refusing unsafe starts,
and killed with SIGKILL in the middle of a burst without losing an acknowledged job."""

from __future__ import annotations

import http.server
import os
import signal
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import trustme

import pqueue
from tests.producer.support import Launch
from tests.programs import Process, Programs, stop_program
from tests.support import free_port, wait_until

pytestmark = [pytest.mark.process, pytest.mark.timeout(180)]


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
def test_pq_demo_feeder__submits_sample_jobs(
    launch: Launch, db_env: dict[str, str], programs: Programs, tmp_path: Path
) -> None:
    _, url = launch()
    env = {**db_env, "PQ_INBOX_DIR": str(tmp_path / "inbox")}
    feeders = [
        programs.start(
            "pq-demo-feeder",
            *("--kind", kind, "--interval", "0.05", "--count", "2", "--url", url),
            env=env,
            log=f"feeder-{kind}.log",
        )
        for kind in ("iqr", "files")
    ]
    try:
        assert [feeder.wait(90) for feeder in feeders] == [0, 0]
    finally:
        for feeder in feeders:
            stop_program(feeder)

    jobs = httpx.get(f"{url}/jobs", params={"limit": 10}).json()["jobs"]
    payloads = [httpx.get(f"{url}/jobs/{job['id']}").json()["payload"] for job in jobs]
    assert len(payloads) == 4
    files = [p["file"] for p in payloads if "file" in p]
    assert len(files) == 2 and all((tmp_path / "inbox" / name).is_file() for name in files)
    assert all({"vendor", "value"} <= set(reading) for p in payloads if "readings" in p for reading in p["readings"])


def _run_feeder(programs: Programs, env: dict[str, str], log: Path, *args: str) -> Process:
    return programs.start("pq-demo-feeder", "--interval", "0.05", *args, env=env, log=log)


def _inbox_files(inbox: Path) -> set[str]:
    return {path.name for path in inbox.iterdir()} if inbox.exists() else set()


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_pq_demo_feeder__kind_is_the_pq_demo_kind_setting(
    launch: Launch, db_env: dict[str, str], programs: Programs, tmp_path: Path
) -> None:
    _, url = launch()
    inbox = tmp_path / "inbox"
    feeders = [
        _run_feeder(
            programs,
            {**db_env, "PQ_INBOX_DIR": str(inbox), "PQ_DEMO_KIND": kind},
            tmp_path / f"{kind}.log",
            "--count",
            "3",
            "--url",
            url,
        )
        for kind in ("files", "add")
    ]
    try:
        assert [feeder.wait(90) for feeder in feeders] == [0, 0]
    finally:
        for feeder in feeders:
            stop_program(feeder)

    jobs = httpx.get(f"{url}/jobs", params={"limit": 10}).json()["jobs"]
    payloads = [httpx.get(f"{url}/jobs/{job['id']}").json()["payload"] for job in jobs]
    assert sorted(tuple(sorted(p)) for p in payloads) == [("a", "b")] * 3 + [("file",)] * 3
    assert _inbox_files(inbox) == {p["file"] for p in payloads if "file" in p}, "a file for each job, and only those"


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_pq_demo_feeder__leaves_no_file_when_the_intake_is_down_or_refuses(
    launch: Launch, db_env: dict[str, str], programs: Programs, tmp_path: Path
) -> None:
    _, url = launch({"PQ_API_TOKEN": "right"})
    down = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    cases = {"down": (down, "right", "not reachable"), "refused": (url, "wrong", "intake answered 401")}
    feeders = {}
    for name, (target, token, _) in cases.items():
        env = {**db_env, "PQ_INBOX_DIR": str(tmp_path / name), "PQ_DEMO_KIND": "files", "PQ_API_TOKEN": token}
        feeders[name] = _run_feeder(programs, env, tmp_path / f"{name}.log", "--url", target)
    try:
        for name, (_, _, said) in cases.items():
            wait_until(
                lambda: (tmp_path / f"{name}.log").read_text().count(said) >= 5,  # noqa: B023 - waited on here
                timeout=60,
                what=f"five failed submissions ({name})",
            )
    finally:
        for feeder in feeders.values():
            stop_program(feeder)

    assert [feeder.returncode for feeder in feeders.values()] == [0, 0], "SIGTERM stops it cleanly"
    assert _inbox_files(tmp_path / "down") == _inbox_files(tmp_path / "refused") == set()
    listed = httpx.get(f"{url}/jobs", headers={"Authorization": "Bearer right"}).json()["jobs"]
    assert listed == []


def _losing_first_answer(intake: str) -> tuple[type[http.server.BaseHTTPRequestHandler], list[int]]:
    """A front for the real intake that forwards POST /jobs but drops the connection instead of
    answering the first one (the job is stored; the feeder never hears so); and the statuses
    the intake answered, in order."""
    forwarded: list[int] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            answer = httpx.post(f"{intake}/jobs", content=body, headers={"Content-Type": "application/json"})
            forwarded.append(answer.status_code)
            if len(forwarded) == 1:
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            self.send_response(answer.status_code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer.content)))
            self.end_headers()
            self.wfile.write(answer.content)

        def log_message(self, *_: object) -> None:
            pass

    return Handler, forwarded


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_pq_demo_feeder__a_lost_answer_sends_the_same_job_and_file_again(
    launch: Launch, db_env: dict[str, str], programs: Programs, tmp_path: Path
) -> None:
    _, url = launch()
    handler, forwarded = _losing_first_answer(url)
    front = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=front.serve_forever, daemon=True).start()
    inbox = tmp_path / "inbox"
    env = {**db_env, "PQ_INBOX_DIR": str(inbox), "PQ_DEMO_KIND": "files"}
    feeder = _run_feeder(
        programs, env, tmp_path / "feeder.log", "--count", "2", "--url", f"http://127.0.0.1:{front.server_port}"
    )
    try:
        assert feeder.wait(90) == 0
    finally:
        stop_program(feeder)
        front.shutdown()
        front.server_close()

    assert forwarded == [202, 200, 202], "stored, then the same key again (the first job back), then a new one"
    jobs = httpx.get(f"{url}/jobs", params={"limit": 10}).json()["jobs"]
    files = {httpx.get(f"{url}/jobs/{job['id']}").json()["payload"]["file"] for job in jobs}
    assert len(jobs) == 2 and _inbox_files(inbox) == files


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
def test_pq_producer__refuses_a_public_host_without_token(
    db_env: dict[str, str], programs: Programs, tmp_path: Path
) -> None:
    args = ["--host", "192.0.2.10", "--port", str(free_port())]
    process = programs.start("pq-producer", *args, env=db_env, log="p.log")
    try:
        code = process.wait(60)
    finally:
        stop_program(process)

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
