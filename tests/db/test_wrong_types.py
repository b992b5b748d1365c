"""A wrong type given to any public call is one PQError naming the argument, and changes nothing.

put_items takes NewJob objects or bare payloads; anything else is refused by its index.
"""

from __future__ import annotations

import inspect
import math
import types
import typing
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pqueue import AgentStatus, InvalidInput, NewJob, PersistentQ, PersistentQInterface, PQError, Status
from pqueue.schema import metadata

PUBLIC = sorted(
    name
    for name, function in inspect.getmembers(PersistentQInterface, inspect.isfunction)
    if not name.startswith("_") and len(inspect.signature(function).parameters) > 1
)
# Values of many types; for each parameter the ones its annotation does not allow are tried.
POOL: list[Any] = [
    None, True, 0, 7, -3, 2**70, 1.5, math.nan, math.inf, "", "text", "a\x00b", "\ud800", b"bytes",
    [1], ["processed"], (2,), {"a": 1}, {1, 2}, object(), Status.PROCESSED, NewJob({"a": 1}), print,
]  # fmt: skip


def fits(hint: Any, value: Any) -> bool:
    """Whether the annotation allows the value (this test's own reading of the contract)."""
    if hint is Any:
        return _is_json(value)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        return any(fits(arg, value) for arg in args)
    if origin is Sequence:
        return isinstance(value, list | tuple | set) and all(fits(args[0], v) for v in value)
    if origin is not None and getattr(origin, "__name__", "") == "Callable":
        return callable(value)
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool) and abs(value) < 2**63
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if hint is str:
        return isinstance(value, str) and "\x00" not in value and "\ud800" not in value
    if hint is Status:
        return isinstance(value, str) and value in set(Status)
    if hint is AgentStatus:
        return isinstance(value, str) and value in set(AgentStatus)
    return isinstance(value, hint)


def _is_json(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_json(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return all(_is_json(v) for v in value)
    return value is None or isinstance(value, bool | int | str)


def right_arguments(q: PersistentQ, tmp_path: Path) -> dict[str, Any]:
    """A value of the right type for every parameter name of the public calls."""
    job = q.get_job(q.get_all_items(limit=1, oldest_first=True).items[0].id)
    return {
        "payload": {"a": 1}, "jobs": [NewJob({"a": 1})], "queue": "default", "priority": 0, "callback_url": None,
        "idempotency_key": None, "run_after_seconds": 0.0, "max_attempts": None, "actor": "test",
        "worker_id": "w1", "lease_seconds": None, "job_id": job.id, "lease_id": job.lease_id,
        "status": "processed", "result": None, "error": None, "reason": "why", "timeout": 0.0, "expect": None,
        "message": None, "seats": 1, "older_than_seconds": 1e6, "dry_run": True, "batch_size": 10,
        "on_batch": None, "limit": 5, "cursor": None, "oldest_first": False, "since_seconds": None,
        "search": None, "window_seconds": 60.0, "bucket_seconds": 60, "kind": "consumer", "host": "h",
        "pid": 1, "lock_seconds": 1.0, "delivery_id": 1, "delivered": True, "status_code": None,
        "retry_in_seconds": None, "held_by": None, "path": str(tmp_path / "copy.db"), "watch": None,
        "job_timeout": None, "retry_backoff_seconds": None, "timed_out": False, "timeout_retries": None,
        "partner": None, "name": "acme",
        "weight": 1.0, "max_running": None, "rate_per_minute": None, "no_max_running": False, "no_rate": False,
        "callback_secret": None, "secret_grace_seconds": 60.0, "enable": False, "scopes": ["read"],
        "expires_in_seconds": None, "key_id": "nokey", "grace_seconds": 60.0, "key": "pq_x", "agent_status": None,
        "behind_job": job.id, "behind_lease": job.lease_id, "held_job": job.id, "job_ids": [job.id], "wake": None,
    }  # fmt: skip


RIGHT_FOR: dict[str, dict[str, Any]] = {
    "purge": {"status": ["processed"]},
    "create_key": {"partner": "default"},
}  # where one name takes another type
PARAMETERS = [
    (operation, name, hint)
    for operation in PUBLIC
    for name, hint in typing.get_type_hints(getattr(PersistentQInterface, operation)).items()
    if name != "return"
]
ANY_VALUE = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.text(), st.binary(), st.sampled_from(list(Status)),
    st.lists(st.integers() | st.text(), max_size=3), st.tuples(st.floats()), st.sets(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2), st.builds(object),
    st.builds(NewJob, st.integers()), st.just(print),
)  # fmt: skip


def call_with(q: PersistentQ, tmp_path: Path, operation: str, name: str, value: Any) -> PQError:
    """Call operation with right arguments but `name`=value; the PQError it raised."""
    signature = inspect.signature(getattr(PersistentQInterface, operation))
    right = {**right_arguments(q, tmp_path), **RIGHT_FOR.get(operation, {})}
    arguments = {p: right[p] for p in list(signature.parameters)[1:]}
    arguments[name] = value
    positional = [p.name for p in signature.parameters.values() if p.kind is p.POSITIONAL_OR_KEYWORD][1:]
    with pytest.raises(PQError) as raised:
        getattr(q, operation)(*[arguments.pop(p) for p in positional], **arguments)
    return raised.value


def snapshot(q: PersistentQ) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every pqueue table."""
    with q.engine.connect() as conn:
        return {
            table.name: [tuple(row) for row in conn.execute(sqlalchemy.select(table).order_by(*table.primary_key))]
            for table in metadata.sorted_tables
        }


@pytest.fixture
def seeded(q: PersistentQ) -> PersistentQ:
    """A queue holding a waiting job and a finished one with a pending callback."""
    q.put_item({"waiting": True})
    q.put_item({"done": True}, callback_url="http://127.0.0.1:9/hook")
    claimed = q.get_item("w1")
    assert claimed is not None
    q.update_status(claimed.id, "processed", lease_id=claimed.lease_id, result={"ok": True})
    return q


def test_every_public_call_is_tried() -> None:
    assert len(PUBLIC) >= 30 and "put_items" in PUBLIC and "record_delivery" in PUBLIC


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_wrong_type__one_pqerror_naming_the_argument_and_nothing_changes(
    seeded: PersistentQ, tmp_path: Path, data: st.DataObject
) -> None:
    operation, name, hint = data.draw(st.sampled_from(PARAMETERS), label="parameter")
    value = data.draw(ANY_VALUE.filter(lambda v: not fits(hint, v)), label="value")
    before = snapshot(seeded)

    error = call_with(seeded, tmp_path, operation, name, value)

    assert name in str(error), f"{operation}({name}={value!r}): {error}"
    assert snapshot(seeded) == before
    assert not (tmp_path / "copy.db").exists()


def test_wrong_type__every_parameter_with_every_wrong_value_of_a_pool(seeded: PersistentQ, tmp_path: Path) -> None:
    before = snapshot(seeded)
    tried = 0
    for operation, name, hint in PARAMETERS:
        for value in (v for v in POOL if not fits(hint, v)):
            error = call_with(seeded, tmp_path, operation, name, value)
            assert name in str(error), f"{operation}({name}={value!r}): {error}"
            tried += 1
    assert tried > 500
    assert snapshot(seeded) == before


def test_put_items__takes_bare_payloads_and_jobs(q: PersistentQ) -> None:
    results = q.put_items([{"a": 1}, NewJob({"a": 2}, priority=-1), [3], "four", None])

    assert [r.created for r in results] == [True] * 5
    jobs = [q.get_job(r.id) for r in results]
    assert [j.payload for j in jobs] == [{"a": 1}, {"a": 2}, [3], "four", None]
    assert [j.priority for j in jobs] == [0, -1, 0, 0, 0]


@pytest.mark.parametrize(
    ("jobs", "message"),
    [
        (
            [{"a": 1}, {1, 2}],
            "jobs[1]: expected a NewJob or a JSON payload (dict, list, str, number, bool or None), got",
        ),
        ([{"a": 1}, object()], "jobs[1]: expected a NewJob or a JSON payload"),
        ([NewJob({"a": 1}, queue=5)], "jobs[0].queue: must be a string or None, got 5 (int)"),  # type: ignore[arg-type]
        ([NewJob({"a": 1}, run_after_seconds="soon")], "jobs[0].run_after_seconds: must be a number"),  # type: ignore[arg-type]
        ({"a": 1}, "jobs: expected a list of NewJob or payloads, got {'a': 1} (dict)"),
        ("abc", "jobs: expected a list of NewJob or payloads, got 'abc' (str)"),
        (7, "jobs: expected a list of NewJob or payloads, got 7 (int)"),
    ],
)
def test_put_items__anything_else_is_one_invalid_input_naming_the_index(
    q: PersistentQ, jobs: Any, message: str
) -> None:
    q.put_item({"kept": True})
    before = snapshot(q)

    with pytest.raises(InvalidInput) as raised:
        q.put_items(jobs)

    assert str(raised.value).startswith(message)
    assert snapshot(q) == before


def test_a_right_call_still_works(seeded: PersistentQ) -> None:
    """The checks refuse only wrong types: the usual calls with their usual values go through."""
    checks: list[Callable[[], Any]] = [
        lambda: seeded.get_all_items(status=[Status.PROCESSED, "crashed"], limit=10),
        lambda: seeded.count_items(status="processed"),
        lambda: seeded.purge(1e6, ["processed"], dry_run=True, on_batch=print),
        lambda: seeded.cancel(seeded.put_item(1), expect=Status.UNPROCESSED, reason=None),
        lambda: seeded.wait_for_work(0),
    ]
    for check in checks:
        check()


VALUE_RULES = [
    (operation, name, value)
    for operation, name, _hint in PARAMETERS
    for rule_name, values in (("queue", ["", "q" * 201]), ("lease_seconds", [0, -1.5]))
    if name == rule_name
    for value in values
]


def test_a_queue_name_and_a_lease_have_one_rule_in_every_call(seeded: PersistentQ, tmp_path: Path) -> None:
    """A queue is named by 1 to 200 characters and a lease lasts more than 0 seconds, whichever
    call takes them: a claim with a negative lease would hand out a job already expired."""
    before = snapshot(seeded)
    operations = {operation for operation, _name, _value in VALUE_RULES}
    assert {"get_item", "heartbeat", "finish_and_claim", "pause", "set_queue_policy", "adopt_queue"} <= operations
    for operation, name, value in VALUE_RULES:
        error = call_with(seeded, tmp_path, operation, name, value)
        assert isinstance(error, InvalidInput) and error.field == name, (operation, name, value, error)
    assert snapshot(seeded) == before
