"""Document 004, the order-status workflow on RabbitMQ, in its own words: a backlog of 100 work
units, `GET /next`, one `GET /go/`, then each unit `queued` on the broker, `processing` at an
agent, and `success` or `error`, with the real pq-relay, pq-producer, RabbitMQ and sample agents.
The words show where an operator looks: `GET /jobs/{id}`, `pq show`, `pq list` and the dashboard."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from streamlit.testing.v1 import AppTest

import pqueue
from pqueue import AgentStatus, InvalidInput, PersistentQ, Status
from relay.topology import Routing
from tests.local_system import LocalSystem, local_system
from tests.programs import stop_and_check, stop_program
from tests.relay.rabbit import Rabbit, rabbit_reachable, rabbit_url
from tests.relay.running import FAST, RelayPrograms
from tests.support import BIN, IN_CI, REPO, wait_until

pytestmark = [pytest.mark.rabbitmq, pytest.mark.process, pytest.mark.timeout(300)]

DASHBOARD = REPO / "ops_dashboard" / "app.py"
BACKLOG = 100  # "a backlog of 100 work-units were created"
MAX_QUEUE = 50  # RTB_BROADCAST_MAX_QUEUE's value in the document: PQ_RELAY_WINDOW


@pytest.fixture
def routing() -> Iterator[Routing]:
    """RTB_BROKER_BOX: a queue name of the test's own, so its broker queues meet no other test."""
    if not rabbit_reachable():
        if IN_CI:
            pytest.fail("RabbitMQ is not reachable on 127.0.0.1:5672: relay tests must run in CI")
        pytest.skip("RabbitMQ is not reachable on 127.0.0.1:5672")
    handle = Rabbit(Routing("seed004" + uuid.uuid4().hex[:8]))
    yield handle.routing
    handle.delete_queues()
    handle.close()


@pytest.fixture
def env(db_env: dict[str, str], routing: Routing) -> dict[str, str]:
    return {
        **db_env,
        **FAST,
        "PQ_RELAY_QUEUE": routing.queue,
        "PQ_RELAY_WINDOW": str(MAX_QUEUE),
        "PQ_AMQP_URL": rabbit_url(),
    }


@pytest.fixture
def system(env: dict[str, str], programs: RelayPrograms, tmp_path: Path) -> Iterator[LocalSystem]:
    with local_system(programs, env, tmp_path / "logs", consumer=False) as running:
        yield running


@pytest.fixture
def store(system: LocalSystem) -> Iterator[PersistentQ]:
    settings = pqueue.load_settings(
        home=Path(system.env["PQ_HOME"]),
        database_url=system.env["PQ_DATABASE_URL"],
        db_schema=system.env.get("PQ_DB_SCHEMA"),
    )
    opened = pqueue.connect(settings=settings)
    yield opened
    opened.close()


@pytest.fixture
def programs(tmp_path: Path) -> Iterator[RelayPrograms]:
    """The test's programs, with pq-relay and sample agents a call away."""
    running = RelayPrograms(tmp_path)
    yield running
    stop_and_check(running)


def http(system: LocalSystem, method: str, path: str, **kwargs: Any) -> httpx.Response:
    return httpx.request(method, f"{system.url}{path}", timeout=30, **kwargs)


def job(system: LocalSystem, job_id: int) -> dict[str, Any]:
    answer: dict[str, Any] = http(system, "GET", f"/jobs/{job_id}").json()
    return answer


def pq(system: LocalSystem, *args: str) -> str:
    done = subprocess.run([str(BIN / "pq"), *args], env=system.env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def dashboard_detail(system: LocalSystem, job_id: int, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The subheaders of the dashboard's page showing job `job_id`."""
    for name, value in system.env.items():
        monkeypatch.setenv(name, value)
    app = AppTest.from_file(str(DASHBOARD), default_timeout=60)
    app.run()
    app.number_input(key="job_id").set_value(job_id).run()
    assert not app.exception, [e.message for e in app.exception]
    return [h.value for h in app.subheader]


def test_backlog_next_go__each_unit_queued_then_processing_then_success_or_error(
    system: LocalSystem,
    store: PersistentQ,
    routing: Routing,
    programs: RelayPrograms,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    queue = routing.queue
    # "When building the image, a backlog of 100 work-units were created"
    programs.relay(system.env, "--backlog", str(BACKLOG), "--wait-for-go")
    wait_until(lambda: f"backlog: {BACKLOG} work units put" in programs.log(), timeout=90, what="the backlog")
    wait_until(lambda: "connected to RabbitMQ" in programs.log(), timeout=90, what="relay connected")

    # "To see the next units which would be first in line: http GET :8080/next"
    line = http(system, "GET", f"/next?queue={queue}&limit=5").json()["jobs"]
    units = [job(system, entry["id"])["payload"] for entry in line]
    assert units == [{"unit": n} for n in range(1, 6)]
    assert all(entry["status"] == "unprocessed" and entry["agent_status"] is None for entry in line)
    assert all(job["status"] == "unprocessed" for job in http(system, "GET", f"/jobs?queue={queue}").json()["jobs"])

    # "we will issue a single go to the API: http GET :8080/go/"
    go = http(system, "GET", "/go/")
    assert (go.status_code, go.json()["name"], go.json()["paused"]) == (200, queue, False)

    # No agent yet: the broker holds RTB_BROADCAST_MAX_QUEUE units, each `queued`.
    def queued() -> list[dict[str, Any]]:
        running = http(system, "GET", f"/jobs?queue={queue}&status=under_process&limit=100").json()["jobs"]
        return [j for j in running if j["agent_status"] == "queued"]

    wait_until(lambda: len(queued()) == MAX_QUEUE, timeout=90, what=f"{MAX_QUEUE} units queued")
    first = line[0]["id"]
    assert (job(system, first)["status"], job(system, first)["agent_status"]) == ("under_process", "queued")
    assert "under_process (queued)" in pq(system, "show", str(first))
    assert pq(system, "list", "--queue", queue, "--status", "under_process").count("(queued)") == MAX_QUEUE

    # An agent takes the first unit and reports it: `processing`.
    programs.agent(system.env, "slow", "--work-seconds", "600")
    wait_until(lambda: job(system, first)["agent_status"] == "processing", timeout=90, what="unit 1 processing")
    assert job(system, first)["status"] == "under_process"
    assert "under_process (processing)" in pq(system, "show", str(first))
    assert f"Job {first} · under_process (processing)" in dashboard_detail(system, first, monkeypatch)
    [listed] = [
        j
        for j in http(system, "GET", f"/jobs?queue={queue}&status=under_process&limit=100").json()["jobs"]
        if j["id"] == first
    ]
    assert listed["agent_status"] == "processing"

    # A unit an agent reports as `error` is retried, then needs an operator; `success` is processed.
    failing = http(system, "POST", "/jobs", json={"payload": {"unit": "bad", "fail": True}, "queue": queue}).json()[
        "id"
    ]
    programs.agent(system.env, "a1", "--work-seconds", "0.05")
    programs.agent(system.env, "a2", "--work-seconds", "0.05")
    wait_until(lambda: job(system, failing)["status"] == "manual_intervention", timeout=180, what="the error")
    assert "simulated failure" in job(system, failing)["error"] and job(system, failing)["agent_status"] is None
    steps = [event.to_status for event in store.events(failing)]
    assert Status.CRASHED in steps and steps[-1] == Status.MANUAL_INTERVENTION  # error: retried, then an operator's

    def done() -> int:
        counts = store.stats().counts.get(queue, {})
        return counts.get(Status.PROCESSED.value, 0)

    wait_until(lambda: done() == BACKLOG - 1, timeout=240, what="every unit but the one held")
    second = line[1]["id"]
    assert job(system, second)["status"] == "processed"
    assert job(system, second)["result"]["echo"] == {"unit": 2}
    assert job(system, second)["agent_status"] is None
    assert job(system, first)["agent_status"] == "processing"  # the slow agent still works on it


def test_a_restart_with_the_backlog_adds_none_and_bad_input_changes_nothing(
    system: LocalSystem, store: PersistentQ, routing: Routing, programs: RelayPrograms
) -> None:
    queue = routing.queue
    relay = programs.relay(system.env, "--backlog", "10", "--wait-for-go")
    wait_until(lambda: "backlog: 10 work units put" in programs.log(), timeout=90, what="the backlog")
    stop_program(relay)
    programs.relay(system.env, "--backlog", "10", "--wait-for-go", log="again.log")
    wait_until(lambda: "backlog: 0 work units put" in programs.log("again.log"), timeout=90, what="the restart")
    assert store.count_items(queue=queue) == 10

    # A backlog that is not a number of units: one line, exit 2, nothing put.
    for wrong in ("-1", "many"):
        done = subprocess.run(
            [str(BIN / "pq-relay"), "--backlog", wrong], env=system.env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 2 and "--backlog" in done.stderr.strip().splitlines()[-1], done.stderr
    # A go for a queue nobody feeds: 404, and no queue is created.
    missing = http(system, "GET", "/go/?queue=nobody-feeds-this")
    assert missing.status_code == 404, missing.text
    assert store.queue_settings("nobody-feeds-this") is None
    # A status word the document does not have: one clear error, nothing written.
    claimed = store.get_item("w1", queue=queue)
    assert claimed is None  # paused until the go
    assert store.count_items(queue=queue) == 10
    unit = store.next_items(queue=queue, limit=1)[0]
    with pytest.raises(InvalidInput, match="agent status"):
        store.heartbeat(unit.id, unit.lease_id, agent_status="done")  # type: ignore[arg-type]
    assert store.get_job(unit.id) == unit
    assert AgentStatus("queued") is AgentStatus.QUEUED
