"""Argument types of the public operations, checked before the database is touched.

A caller that passes a wrong type (a dict where a job was expected, a string for a job id) gets
one InvalidInput naming the argument and what was expected, never an AttributeError from deep in
the store or a driver error. What is checked comes from PersistentQInterface's own annotations,
so the contract and its checks cannot drift apart. A few parameters mean the same in every
operation and have one rule of value too (a queue's name, a lease's length); other values within
a right type (a limit of 0, an unknown status) are the store's to judge.
"""

from __future__ import annotations

import functools
import math
import re
import types
import typing
from collections.abc import Callable, Iterable, Sequence
from datetime import timedelta
from typing import Any

from pqueue.errors import InvalidInput
from pqueue.interface import PersistentQInterface
from pqueue.models import NewJob
from pqueue.states import AgentStatus, Status

Check = Callable[[str, Any], None]
# A number of seconds or a count past this is a mistake, and past what the databases' date
# arithmetic and 64-bit integers hold (the driver's error would be the caller's answer).
LARGEST_NUMBER = 1e10
LARGEST_INTEGER = 2**63 - 1
# What a bare payload in put_items may be at its top level (its contents are checked when stored).
PAYLOAD_TYPES = (dict, list, tuple, str, int, float, bool, type(None))
PAYLOAD_WORDS = "a NewJob or a JSON payload (dict, list, str, number, bool or None)"
MAX_PAGE = 1000  # the most jobs one read of a page (or of the line) returns
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}


def check_call(operation: str, arguments: dict[str, Any]) -> None:
    """Raise InvalidInput for the first argument of `operation` that has the wrong type.

    Called first thing in each public operation with `locals()`, so `arguments` holds exactly
    the operation's parameters.
    """
    for name, check in _checks(operation):
        check(name, arguments[name])
    for name, rule in _VALUE_RULES.items():
        if arguments.get(name) is not None:
            rule(name, arguments[name])


def check_page_limit(limit: int) -> None:
    """A page holds 1 to MAX_PAGE jobs."""
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInput("limit", f"must be between 1 and {MAX_PAGE}")


def duration_text(text: str) -> float | None:
    """'30m', '12h', '7d' (also s and w) as seconds; None for text that is not a duration."""
    match = _DURATION.match(text.strip().lower())
    return None if match is None else float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def duration_seconds(name: str, value: Any) -> float:
    """A duration given as seconds, a timedelta or text like '7d', in seconds; InvalidInput else."""
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, str):
        parsed = duration_text(value)
        if parsed is None:
            raise InvalidInput(name, f"{value!r} is not a duration; use seconds, a timedelta, or 90s, 30m, 12h, 7d")
        seconds = parsed
    else:
        _number(name, value)
        seconds = float(value)
    if seconds < 0:
        raise InvalidInput(name, "must not be negative")
    return seconds


def jobs_to_put(new_jobs: Any, actor: Any) -> list[NewJob]:
    """put_items' arguments checked, bare payloads wrapped: the jobs as NewJob, in order."""
    _text("actor", actor)
    if isinstance(new_jobs, str | bytes | dict) or not isinstance(new_jobs, Iterable):
        raise InvalidInput("jobs", f"expected a list of NewJob or payloads, got {_shown(new_jobs)}")
    jobs = list(new_jobs)
    for index, job in enumerate(jobs):
        if isinstance(job, NewJob):
            if not _plainly_right(job):
                _check_new_job(f"jobs[{index}]", job)
        elif isinstance(job, PAYLOAD_TYPES):
            jobs[index] = NewJob(job)
        else:
            raise InvalidInput(f"jobs[{index}]", f"expected {PAYLOAD_WORDS}, got {_shown(job)}")
    return jobs


def _plainly_right(job: NewJob) -> bool:
    """The usual job, told right cheaply (about 0.4 ms for a batch of 1,000, not 2): anything else
    gets the full check, which names what is wrong."""
    return (
        type(job.priority) is int
        and type(job.run_after_seconds) in (float, int)
        and -LARGEST_NUMBER <= job.run_after_seconds <= LARGEST_NUMBER
        and _plain_text(job.queue)
        and _plain_text(job.callback_url)
        and _plain_text(job.idempotency_key)
        and (job.max_attempts is None or type(job.max_attempts) is int)
    )


def _plain_text(value: Any) -> bool:
    return value is None or (type(value) is str and value.isascii() and "\x00" not in value)


def _check_new_job(where: str, job: NewJob) -> None:
    for name, check in _NEW_JOB_CHECKS:
        check(f"{where}.{name}", getattr(job, name))


@functools.cache
def _checks(operation: str) -> list[tuple[str, Check]]:
    hints = typing.get_type_hints(getattr(PersistentQInterface, operation))
    hints.pop("return", None)
    return [(name, _check_for(hint)) for name, hint in hints.items() if _check_for(hint) is not _anything]


def _check_for(hint: Any) -> Check:
    """The check of one annotation: plain types, X | None, Sequence[X], Callable and Any."""
    if hint is Any:
        return _anything
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        return _union([_check_for(arg) for arg in args], _words(hint))
    if origin in (Sequence, list, tuple):
        return _sequence(_check_for(args[0]) if args else _anything, _words(hint))
    if origin is not None and getattr(origin, "__name__", "") == "Callable":
        return _callable
    return _SIMPLE.get(hint) or _instance(hint)


def _anything(_name: str, _value: Any) -> None:
    return None


def _none(name: str, value: Any) -> None:
    if value is not None:
        raise InvalidInput(name, f"must be None, got {_shown(value)}")


def _integer(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(name, f"must be an integer, got {_shown(value)}")
    if abs(value) > LARGEST_INTEGER:
        raise InvalidInput(name, f"must be a 64-bit integer, got {value}")


def _number(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInput(name, f"must be a number, got {_shown(value)}")
    if not math.isfinite(value) or abs(value) > LARGEST_NUMBER:
        raise InvalidInput(name, f"must be a finite number no larger than {LARGEST_NUMBER:.0e}, got {value}")


def _text(name: str, value: Any) -> None:
    if not isinstance(value, str):
        raise InvalidInput(name, f"must be a string, got {_shown(value)}")
    if "\x00" in value:
        raise InvalidInput(name, "must not contain NUL characters")
    if not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError:
            raise InvalidInput(name, "must be valid Unicode text (it holds a lone surrogate)") from None


def _flag(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise InvalidInput(name, f"must be True or False, got {_shown(value)}")


def _status(name: str, value: Any) -> None:
    if not isinstance(value, Status) and not (isinstance(value, str) and value in Status._value2member_map_):
        raise InvalidInput(name, f"must be a job status ({', '.join(Status)}), got {_shown(value)}")


def _agent_status(name: str, value: Any) -> None:
    if not isinstance(value, str) or value not in AgentStatus._value2member_map_:
        raise InvalidInput(name, f"must be an agent status ({', '.join(AgentStatus)}), got {_shown(value)}")


def _callable(name: str, value: Any) -> None:
    if not callable(value):
        raise InvalidInput(name, f"must be a function, got {_shown(value)}")


def _instance(kind: type) -> Check:
    def check(name: str, value: Any) -> None:
        if not isinstance(value, kind):
            raise InvalidInput(name, f"must be a {kind.__name__}, got {_shown(value)}")

    return check


def _union(checks: list[Check], words: str) -> Check:
    if checks == [_text, _status] or checks == [_status, _text]:  # `Status | str`: any text, judged later
        return _text
    if _anything in checks:
        return _anything
    if len(checks) == 2 and _none in checks:  # X | None, the usual optional argument: no loop
        (inner,) = (one for one in checks if one is not _none)

        def optional(name: str, value: Any) -> None:
            if value is not None:
                try:
                    inner(name, value)
                except InvalidInput as exc:
                    raise InvalidInput(name, f"must be {words}, got {_shown(value)}") from exc

        return optional

    def check(name: str, value: Any) -> None:
        for one in checks:
            try:
                one(name, value)
            except InvalidInput:
                continue
            return
        raise InvalidInput(name, f"must be {words}, got {_shown(value)}")

    return check


def _sequence(item: Check, words: str) -> Check:
    def check(name: str, value: Any) -> None:
        if isinstance(value, str | bytes | dict) or not isinstance(value, Sequence | set | frozenset):
            raise InvalidInput(name, f"must be {words}, got {_shown(value)}")
        for index, element in enumerate(value):
            item(f"{name}[{index}]", element)

    return check


def _words(hint: Any) -> str:
    """An annotation as a reader says it: 'Status | str | a list of (Status | str) | None'."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        return " or ".join(_words(arg) for arg in args)
    if origin in (Sequence, list, tuple):
        return f"a list of ({_words(args[0])})" if args else "a list"
    said = {type(None): "None", int: "an integer", float: "a number", str: "a string", bool: "True or False"}
    said[AgentStatus] = f"an agent status ({', '.join(AgentStatus)})"
    return said.get(hint, getattr(hint, "__name__", str(hint)))


def _shown(value: Any) -> str:
    text = repr(value)
    return f"{text[:60]}… ({type(value).__name__})" if len(text) > 60 else f"{text} ({type(value).__name__})"


def _queue_name(name: str, value: str) -> None:
    if not 0 < len(value) <= 200:
        raise InvalidInput(name, f"must be 1 to 200 characters, got {_shown(value)}")


def _positive(name: str, value: float) -> None:
    if value <= 0:
        raise InvalidInput(name, f"must be more than 0 seconds, got {value}")


# Rules of value for parameters that mean the same wherever they appear (after their type's check).
_VALUE_RULES: dict[str, Check] = {"queue": _queue_name, "lease_seconds": _positive}

_SIMPLE: dict[Any, Check] = {
    int: _integer,
    float: _number,
    str: _text,
    bool: _flag,
    type(None): _none,
    Status: _status,
    AgentStatus: _agent_status,
}
_NEW_JOB_CHECKS = [
    (name, _check_for(hint))
    for name, hint in typing.get_type_hints(NewJob).items()
    if _check_for(hint) is not _anything
]
