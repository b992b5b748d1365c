"""The intake's small decisions, without a server: start-up safety, body checks, callback URLs,
and the cached queue depth."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import pqueue
from pqueue import InvalidInput, PersistentQ, Settings, check_callback_url
from producer.__main__ import is_loopback, main, startup_problem
from producer.backpressure import QueueFull, WaitingDepth
from producer.demo import intake_url
from producer.guards import find_problem, surely_fine


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.0.0.2", True), ("::1", True), ("[::1]", True), ("localhost", True)]
    + [("0.0.0.0", False), ("::", False), ("192.168.1.5", False), ("intake.example", False)],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


@pytest.mark.parametrize(
    ("overrides", "host", "problem"),
    [
        ({}, "127.0.0.1", None),
        ({}, "0.0.0.0", "refusing to listen on 0.0.0.0 without PQ_API_TOKEN"),
        ({"api_token": "t"}, "0.0.0.0", None),
        ({"allow_insecure": True}, "0.0.0.0", None),
        ({"tls_keyfile": "/k.pem"}, "127.0.0.1", "set both PQ_TLS_CERTFILE and PQ_TLS_KEYFILE"),
        ({"tls_certfile": "/no/c.pem", "tls_keyfile": "/no/k.pem"}, "127.0.0.1", "PQ_TLS_CERTFILE=/no/c.pem is not"),
    ],
)
def test_startup_problem(overrides: dict[str, object], host: str, problem: str | None) -> None:
    found = startup_problem(pqueue.load_settings(**overrides), host)

    assert found == problem if problem is None else problem in (found or "")


def test_main__bad_setting_exits_with_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PQ_MAX_BODY_BYTES", "lots")

    with pytest.raises(SystemExit) as exit_info:
        main([])

    assert str(exit_info.value) == "pq-producer: PQ_MAX_BODY_BYTES='lots' is not an integer"


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        ({"payload": {"a": [1, "two", None, 3.5]}}, None),
        (json.loads("[" * 32 + "]" * 32), None),
        (json.loads("[" * 33 + "]" * 33), "nests deeper than 32 levels"),
        ({"payload": {"deep": json.loads("[" * 31 + "]" * 31)}}, "payload.deep" + "[0]" * 30 + ": the JSON body"),
        ({"payload": ["ok", "bad\x00"]}, "payload[1]: contains the NUL character"),
        ({"payload": {"\udc80": 1}}, "payload: a key contains a lone surrogate"),
    ],
    ids=["plain", "at the limit", "one past", "path named", "NUL", "surrogate key"],
)
def test_find_problem(document: object, problem: str | None) -> None:
    found = find_problem(document, 32)

    assert found == problem if problem is None else problem in (found or "")


@pytest.mark.parametrize(
    ("body", "fine"),
    [
        (b'{"payload": {"readings": [{"vendor": "acme", "value": 1}]}}', True),
        (b"[" * 32 + b"]" * 32, True),
        (b"[" * 33 + b"]" * 33, False),
        (b'{"payload": "a\\u0000b"}', False),
        ('{"payload": "caf\u00e9"}'.encode(), False),
        ('{"payload": 1}'.encode("utf-16"), False),
    ],
    ids=["plain", "at the limit", "one past", "escape", "non-ASCII", "UTF-16"],
)
def test_surely_fine(body: bytes, fine: bool) -> None:
    assert surely_fine(body, 32) is fine


ANY_TEXT = st.text(st.characters(exclude_categories=()))  # lone surrogates and NUL too
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | ANY_TEXT,
    lambda children: st.lists(children) | st.dictionaries(ANY_TEXT, children),
    max_leaves=60,
)


@given(document=JSON_VALUES, ensure_ascii=st.booleans(), max_depth=st.integers(1, 8))
def test_surely_fine__never_skips_a_problem(document: object, ensure_ascii: bool, max_depth: int) -> None:
    body = json.dumps(document, ensure_ascii=ensure_ascii).encode("utf-8", "surrogatepass")

    if surely_fine(body, max_depth):
        assert find_problem(json.loads(body), max_depth) is None


@pytest.mark.parametrize(
    ("url", "allow", "problem"),
    [
        ("https://partner.example/hook", None, None),
        ("HTTP://Partner.Example:8443/hook?x=1", "partner.example", None),
        ("https://other.example/hook", "partner.example, backup.example", "use one of backup.example, partner.example"),
        ("javascript:alert(1)", None, "is not an http or https URL"),
        ("http://[::1/", None, "has an invalid host or port"),
        ("http://:80/x", None, "names no host"),
    ],
)
def test_check_callback_url(url: str, allow: str | None, problem: str | None) -> None:
    allowed = pqueue.load_settings(callback_allow=allow).callback_allowed_hosts
    if problem is None:
        check_callback_url(url, allowed)
        return
    with pytest.raises(InvalidInput) as error:
        check_callback_url(url, allowed)
    assert problem in str(error.value) and error.value.field == "callback_url"


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_waiting_depth__counts_own_jobs_between_reads(q: PersistentQ) -> None:
    depth = WaitingDepth(q, limit=3, max_age=3600)  # never re-read during the test
    q.put_item(1)
    assert depth.current() == 1
    q.put_item(2)
    q.put_item(3)

    depth.added(1)  # this intake stored one; the other two came from elsewhere, unseen until the next read
    depth.check_room(1)
    depth.added(1)
    with pytest.raises(QueueFull, match="3 jobs are waiting and the limit is 3"):
        depth.check_room(1)


@pytest.mark.parametrize(
    ("overrides", "url"),
    [
        ({}, "http://127.0.0.1:8000"),
        ({"producer_host": "0.0.0.0", "producer_port": 9000}, "http://127.0.0.1:9000"),
        ({"producer_host": "::1", "tls_certfile": Path("/c.pem")}, "https://[::1]:8000"),
    ],
)
def test_demo_feeder__finds_the_local_intake(overrides: dict[str, object], url: str) -> None:
    settings: Settings = pqueue.load_settings(**overrides)

    assert intake_url(settings) == url
