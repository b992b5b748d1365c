"""Message formats, routing names and configuration checks (no broker needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from relay import broker
from relay.__main__ import main as relay_main
from relay.messages import MalformedStatus, StatusMessage, parse_status, status_message
from relay.topology import Routing


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"job_id": 3, "lease_id": 2, "status": "processing"}', StatusMessage(3, 2, "processing")),
        (
            b'{"job_id": 3, "lease_id": 2, "status": "success", "result": {"x": [1, 2]}, "agent": "a1"}',
            StatusMessage(3, 2, "success", result={"x": [1, 2]}, agent="a1"),
        ),
        (b'{"job_id": 3, "lease_id": 2, "status": "success"}', StatusMessage(3, 2, "success")),
        (
            b'{"job_id": 3, "lease_id": 2, "status": "error", "error": "disk full"}',
            StatusMessage(3, 2, "error", error="disk full"),
        ),
        (
            b'{"job_id": 3, "lease_id": 2, "status": "released", "agent": "a1"}',
            StatusMessage(3, 2, "released", agent="a1"),
        ),
    ],
)
def test_parse_status__reads_each_documented_form(body: bytes, expected: StatusMessage) -> None:
    assert parse_status(body) == expected


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"\xff\xfe", "not UTF-8"),
        (b"{oops", "not JSON"),
        (b'{"job_id": 1, "lease_id": 1, "status": "success", "result": NaN}', "NaN is not JSON"),
        (b"[1, 2]", "must be a JSON object, got list"),
        (b'{"lease_id": 1, "status": "success"}', "job_id must be a positive integer, got None"),
        (b'{"job_id": true, "lease_id": 1, "status": "success"}', "job_id must be a positive integer, got True"),
        (b'{"job_id": "7", "lease_id": 1, "status": "success"}', "job_id must be a positive integer, got '7'"),
        (b'{"job_id": 7, "lease_id": -1, "status": "success"}', "lease_id must be a positive integer, got -1"),
        (b'{"job_id": 7, "lease_id": 1, "status": "finished"}', "status must be one of processing, .*, released"),
        (b'{"job_id": 7, "lease_id": 1, "status": "error"}', "needs a non-empty error string"),
        (b'{"job_id": 7, "lease_id": 1, "status": "error", "error": " "}', "needs a non-empty error string"),
        (b'{"job_id": 7, "lease_id": 1, "status": "success", "agent": 5}', "agent must be a string"),
        (b"[" * 100_000, "nested too deeply"),
    ],
)
def test_parse_status__says_what_is_wrong(body: bytes, reason: str) -> None:
    with pytest.raises(MalformedStatus, match=reason.replace("(", r"\(")):
        parse_status(body)


def test_status_message__round_trips_through_parse_status() -> None:
    body = status_message(9, 4, "success", result={"ok": True}, agent="a")
    assert json.loads(body) == {"job_id": 9, "lease_id": 4, "status": "success", "result": {"ok": True}, "agent": "a"}
    assert parse_status(body) == StatusMessage(9, 4, "success", result={"ok": True}, agent="a")
    assert parse_status(status_message(9, 4, "error", error="boom")).error == "boom"


def test_routing__names_derive_from_the_queue_name() -> None:
    routing = Routing("remote")
    assert (routing.outbox_queue, routing.outbox_key) == ("pq.remote.outbox", "remote.job")
    assert (routing.inbox_queue, routing.inbox_key) == ("pq.remote.inbox", "remote.status")
    assert (routing.dead_queue, routing.dead_key) == ("pq.remote.dead", "remote.dead")
    assert routing.problem() is None
    assert "exceeds 255 bytes" in (Routing("é" * 200).problem() or "")


def test_broker_url__bad_ones_refused_and_the_password_never_shown() -> None:
    with pytest.raises(broker.BrokerUrlError, match="must start with amqp://"):
        broker.parameters("http://guest:secret@127.0.0.1/")
    with pytest.raises(broker.BrokerUrlError, match="not a usable AMQP URL") as caught:
        broker.parameters("amqp://guest:secret@127.0.0.1:port/")
    assert "secret" not in str(caught.value)
    assert broker.describe("amqps://u:secret@mq.example:5671/prod") == "amqps://u@mq.example:5671/prod"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PQ_AMQP_URL": "http://127.0.0.1/"}, "pq-relay: PQ_AMQP_URL: broker URL 'http://127.0.0.1/' must start"),
        ({"PQ_RELAY_WINDOW": "many"}, "pq-relay: PQ_RELAY_WINDOW='many' is not an integer"),
        ({"PQ_RELAY_QUEUE": "q" * 250}, "pq-relay: PQ_RELAY_QUEUE: queue name"),
    ],
)
def test_pq_relay__bad_configuration_is_one_line_exit_2_and_touches_nothing(
    tmp_path: Path,
    env: dict[str, str],
    message: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("PQ_HOME", str(tmp_path))
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    assert relay_main([]) == 2

    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), lines
    assert not (tmp_path / "var").exists(), "a refused start created a database"
