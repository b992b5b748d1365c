"""pqueue/validation.py: every public operation is checked by `@checked`, and every rule of value
in RULES names a parameter it applies to (a misspelt key would check nothing, silently)."""

from __future__ import annotations

import inspect
import typing
from typing import Any

import pytest

from pqueue import InvalidInput, NewJob, PersistentQ, PersistentQInterface, load_settings, submitting
from pqueue.validation import CHECKED, RULES, checked, jobs_to_put

# put_items takes bare payloads beside jobs: jobs_to_put checks them, by index.
CHECKED_ELSEWHERE = {"put_items"}


def test_every_operation_with_arguments_is_checked() -> None:
    operations = {
        name
        for name, function in inspect.getmembers(PersistentQInterface, inspect.isfunction)
        if not name.startswith("_") and len(inspect.signature(function).parameters) > 1
    }
    assert operations - CHECKED_ELSEWHERE <= set(CHECKED)
    for name in operations - CHECKED_ELSEWHERE:
        assert hasattr(getattr(PersistentQ, name), "__wrapped__"), name


def test_every_rule_names_a_parameter() -> None:
    fields = set(typing.get_type_hints(NewJob))
    parameters = {parameter for name, names in CHECKED.items() if hasattr(PersistentQ, name) for parameter in names}
    for key in RULES:
        where, _, parameter = key.rpartition(".")
        if where == "NewJob":
            assert parameter in fields, key
        elif where:
            assert parameter in CHECKED.get(where, ()), key
        else:
            assert parameter in parameters, key


class _Probe:
    @checked
    def probe_pause(self, queue: str | None = None, *, lease_seconds: float | None = None) -> str | None:
        return queue


def test_checked__types_then_the_shared_rule_positional_or_keyword() -> None:
    probe = _Probe()
    assert probe.probe_pause("q") == "q" and probe.probe_pause() is None and probe.probe_pause(queue=None) is None
    with pytest.raises(InvalidInput, match="queue: must be a string or None, got 5 \\(int\\)"):
        probe.probe_pause(5)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="queue: must be 1 to 200 characters"):
        probe.probe_pause(queue="")
    with pytest.raises(InvalidInput, match="lease_seconds: must be more than 0 seconds, got 0"):
        probe.probe_pause("q", lease_seconds=0)
    with pytest.raises(TypeError):
        typing.cast(Any, probe).probe_pause("q", "extra")


@pytest.mark.parametrize(
    "payloads", [[float("inf")], [1, float("nan")], [NewJob(1, idempotency_key="k"), [float("nan")]]]
)
def test_a_bare_payload_that_json_cannot_hold_is_named_by_its_place_in_the_list(payloads: list[Any]) -> None:
    """Found when it is serialised for storing, once."""
    new_jobs, bare = jobs_to_put(payloads, "producer")
    with pytest.raises(InvalidInput) as raised:
        submitting.runs(new_jobs, load_settings(), bare)
    assert str(raised.value).startswith(f"jobs[{len(payloads) - 1}]: is not JSON-serialisable")


def test_a_jobs_payload_that_json_cannot_hold_is_named_by_its_job() -> None:
    for payloads, name in (([NewJob(float("nan"))], "job.payload"), ([1, NewJob([float("inf")])], "jobs[1].payload")):
        new_jobs, bare = jobs_to_put(payloads, "producer")
        with pytest.raises(InvalidInput) as raised:
            submitting.runs(new_jobs, load_settings(), bare)
        assert str(raised.value).startswith(f"{name}: is not JSON-serialisable")
