"""The arguments of the public operations, checked before the database is touched: the one place
that answers "where is argument X checked?".

Each operation of PersistentQ is wrapped once by `@checked`, which reads its signature and type
annotations when the class is defined. A caller that passes a wrong type (a dict where a job was
expected, a string for a job id) or a wrong value (an empty queue name, a lease of 0 seconds) gets
one InvalidInput naming the argument and what was expected, never an AttributeError from deep in
the store or a driver error.

The rules of value sit in one table, RULES, beside the type rules: a key "operation.parameter"
for a rule of one operation, "parameter" for a rule every operation shares (a queue's name, a
lease's length), and "NewJob.field" for the fields of a job put_items takes. A rule of value runs
after the argument's type is known right, and never for None.
"""

from __future__ import annotations

import functools
import inspect
import json
import math
import re
import types
import typing
from collections.abc import Callable, Iterable, Sequence
from datetime import timedelta
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

from pqueue.errors import InvalidInput
from pqueue.models import NewJob
from pqueue.partners import SCOPES
from pqueue.states import WORKER_OUTCOMES, AgentStatus, Status, describe

Check = Callable[[str, Any], None]
Operation = TypeVar("Operation", bound=Callable[..., Any])
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
_PARTNER_NAME = re.compile(r"[a-z0-9-]{1,64}")

# The operations `checked` wraps, each with the parameters it checks (for the tests of the table).
CHECKED: dict[str, tuple[str, ...]] = {}


def checked(operation: Operation) -> Operation:
    """The operation with its arguments checked first, by type (its annotations) and by value (RULES).

    The signature is read here, once: a call pays a dictionary lookup and a check per argument it
    passes (an argument left to its default is right by construction).
    """
    name = operation.__name__
    hints = typing.get_type_hints(operation)
    hints.pop("return", None)
    checks = {
        param: _with_rule(_check_for(hint), RULES.get(f"{name}.{param}", RULES.get(param)))
        for param, hint in hints.items()
    }
    checks = {param: check for param, check in checks.items() if check is not _anything}
    parameters = inspect.signature(operation).parameters.values()
    positional = tuple(p.name for p in parameters if p.kind is p.POSITIONAL_OR_KEYWORD)[1:]  # after self
    CHECKED[name] = tuple(hints)

    @functools.wraps(operation)
    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        for param, value in zip(positional, args):  # noqa: B905 - too many arguments: the call's TypeError
            check = checks.get(param)
            if check is not None:
                check(param, value)
        for param, value in kwargs.items():
            check = checks.get(param)
            if check is not None:
                check(param, value)
        return operation(self, *args, **kwargs)

    return cast(Operation, call)


def _with_rule(check: Check, rule: Check | None) -> Check:
    """The type's check, then (for a value that is not None) the rule of value."""
    if rule is None:
        return check

    def both(name: str, value: Any) -> None:
        check(name, value)
        if value is not None:
            rule(name, value)

    return both


# -- put_items: jobs and bare payloads ------------------------------------------------------------


def jobs_to_put(new_jobs: Any, actor: Any) -> tuple[list[NewJob], frozenset[int]]:
    """put_items' arguments checked by type, bare payloads wrapped: the jobs as NewJob, in order,
    and the places of those given as bare payloads (whether JSON can hold a payload is found
    when it is serialised, pqueue/submitting.py, which names a bare one by its place)."""
    _text("actor", actor)
    if isinstance(new_jobs, str | bytes | dict) or not isinstance(new_jobs, Iterable):
        raise InvalidInput("jobs", f"expected a list of NewJob or payloads, got {_shown(new_jobs)}")
    jobs = list(new_jobs)
    bare = set()
    for index, job in enumerate(jobs):
        if isinstance(job, NewJob):
            if not _plainly_right(job):
                _check_new_job(f"jobs[{index}]", job)
        elif isinstance(job, PAYLOAD_TYPES):
            jobs[index] = NewJob(job)
            bare.add(index)
        else:
            raise InvalidInput(f"jobs[{index}]", f"expected {PAYLOAD_WORDS}, got {_shown(job)}")
    return jobs, frozenset(bare)


def check_new_job_values(job: NewJob, where: str) -> None:
    """The rules of value of a job's fields ("NewJob.<field>" in RULES) but its payload, checked
    when it is serialised, and its callback URL, which needs the allowed hosts."""
    for name, rule in _NEW_JOB_RULES:
        value = getattr(job, name)
        if value is not None:
            rule(f"{where}.{name}", value)


def _plainly_right(job: NewJob) -> bool:
    """The usual job, told right by type cheaply (about 0.4 ms for a batch of 1,000, not 2):
    anything else gets the full check, which names what is wrong."""
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


def check_callback_url(url: str, allowed_hosts: frozenset[str], field: str = "callback_url") -> None:
    """http(s) with a host, and one of PQ_CALLBACK_ALLOW's hosts when that is set: the one rule of
    a callback URL (the intake and `pq enqueue` ask it before they submit; put_items for every job;
    the consumer checks again at send time, with DNS)."""
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError:
        raise InvalidInput(field, f"{url!r} has an invalid host or port") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise InvalidInput(field, f"{url!r} is not an http or https URL")
    if not host:
        raise InvalidInput(field, f"{url!r} names no host")
    if allowed_hosts and host not in allowed_hosts:
        raise InvalidInput(field, f"host {host!r} is not allowed; use one of {', '.join(sorted(allowed_hosts))}")


def json_safe(field: str, value: Any) -> None:
    """InvalidInput unless JSON can hold the value."""
    try:
        json.dumps(value, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise InvalidInput(field, f"is not JSON-serialisable ({exc})") from None


# -- durations, as operators write them -----------------------------------------------------------


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


# -- the type rules: one check for each annotation ------------------------------------------------


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
    if checks == [_text, _status] or checks == [_status, _text]:  # `Status | str`: any text, judged by RULES
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


# -- the rules of value ---------------------------------------------------------------------------


def _name_of_1_to_200(name: str, value: str) -> None:
    if not 0 < len(value) <= 200:
        raise InvalidInput(name, f"must be 1 to 200 characters, got {_shown(value)}")


def _short_text(name: str, value: str) -> None:
    if not 0 < len(value) <= 200:
        raise InvalidInput(name, "must be 1 to 200 characters")


def _positive_seconds(name: str, value: float) -> None:
    if value <= 0:
        raise InvalidInput(name, f"must be more than 0 seconds, got {value}")


def _at_least(least: float, *, inclusive: bool = True) -> Check:
    """A queue policy's bound: at least `least`, or more than it."""

    def check(name: str, value: float) -> None:
        if value < least or (value == least and not inclusive):
            raise InvalidInput(name, f"must be {'at least' if inclusive else 'more than'} {least}, got {value}")

    return check


def _not_negative(name: str, value: float) -> None:
    if value < 0:
        raise InvalidInput(name, "must not be negative")


def _as(field: str, rule: Check) -> Check:
    """The rule, said of `field`: the name an operator knows the argument by (`pq partner set
    --grace`), which an older caller's error handling may read."""

    def check(_name: str, value: Any) -> None:
        rule(field, value)

    return check


def _page_limit(name: str, value: int) -> None:
    if not 1 <= value <= MAX_PAGE:
        raise InvalidInput(name, f"must be between 1 and {MAX_PAGE}")


def _bucket(name: str, value: int) -> None:
    if value < 1:
        raise InvalidInput(name, "must be at least 1")


def _cursor(name: str, value: str) -> None:
    if not value.isdigit():
        raise InvalidInput(name, f"{value!r} is not a cursor this API returned")


def _status_filter(name: str, value: Any) -> None:
    items = [value] if isinstance(value, str) else list(value)
    if any(item not in Status._value2member_map_ for item in items):
        raise InvalidInput(name, f"{items!r} is not a job status; use {describe(tuple(Status))}")


def _purgeable(name: str, value: Any) -> None:
    _status_filter(name, value)
    if Status.UNDER_PROCESS in value:
        raise InvalidInput(name, "under_process jobs are running and are never purged")


def _outcome(name: str, value: str) -> None:
    if value not in WORKER_OUTCOMES:
        raise InvalidInput(name, f"{value!r} is not an outcome; use {describe(WORKER_OUTCOMES)}")


def _said_why(name: str, value: str) -> None:
    if not value.strip():
        raise InvalidInput(name, "say why the job is failed")


def _partner_name(name: str, value: str) -> None:
    if not _PARTNER_NAME.fullmatch(value):
        raise InvalidInput(name, f"{value!r} is not a partner name; use 1 to 64 of a-z, 0-9 and '-'")


def _weight(name: str, value: float) -> None:
    if not 0 < value < float("inf"):
        raise InvalidInput(name, f"{value!r} is not a number above 0")


def _positive_integer(name: str, value: int) -> None:
    """A cap or a rate."""
    if value < 1:
        raise InvalidInput(name, f"{value!r} is not a positive integer")


def _secret(name: str, value: str) -> None:
    if not value.strip():
        raise InvalidInput(name, "is empty")


def _scopes(name: str, value: Sequence[str]) -> None:
    """Known scopes, at least one (empty entries are passed over)."""
    given = [scope.strip() for scope in value if scope.strip()]
    unknown = [scope for scope in given if scope not in SCOPES]
    if unknown or not given:
        raise InvalidInput(name, f"{','.join(unknown) or 'none'} is not a scope; use some of {', '.join(SCOPES)}")


def _duration_above_0(name: str, value: float) -> None:
    if value <= 0:
        raise InvalidInput(name, "must be a duration above 0")


def _job_priority(name: str, value: int) -> None:
    if abs(value) > 2**31 - 1:
        raise InvalidInput(name, "must be a 32-bit integer")


def _job_attempts(name: str, value: int) -> None:
    if value < 1:
        raise InvalidInput(name, "must be an integer of at least 1")


# Every rule of value: "operation.parameter" for one operation, "parameter" for every operation
# that takes it (an operation's own rule, where it has one, is used instead), "NewJob.field" for
# each job put_items takes. The queue policy's bounds are the PQ_ settings' bounds.
RULES: dict[str, Check] = {
    "queue": _name_of_1_to_200,
    "lease_seconds": _positive_seconds,
    "result": json_safe,
    "weight": _weight,
    "max_running": _positive_integer,
    "rate_per_minute": _as("rate", _positive_integer),
    "update_status.status": _outcome,
    "finish_and_claim.status": _outcome,
    "finish_and_start.status": _outcome,
    "fail.reason": _said_why,
    "set_seats.seats": _at_least(1),
    "set_queue_policy.seats": _at_least(1),
    "set_queue_policy.max_attempts": _at_least(1),
    "set_queue_policy.job_timeout": _at_least(0, inclusive=False),
    "set_queue_policy.retry_backoff_seconds": _at_least(0),
    "set_queue_policy.timeout_retries": _at_least(0),
    "purge.older_than_seconds": _as("older_than", _not_negative),
    "purge.status": _purgeable,
    "get_all_items.status": _status_filter,
    "count_items.status": _status_filter,
    "get_all_items.limit": _page_limit,
    "next_items.limit": _page_limit,
    "waits.limit": _page_limit,
    "get_all_items.cursor": _cursor,
    "throughput.bucket_seconds": _bucket,
    "waiting_changes.bucket_seconds": _bucket,
    "add_partner.name": _as("partner", _partner_name),
    "set_partner.callback_secret": _secret,
    "set_partner.secret_grace_seconds": _as("grace", _not_negative),
    "rotate_key.grace_seconds": _as("grace", _not_negative),
    "create_key.scopes": _scopes,
    "create_key.expires_in_seconds": _as("expires", _duration_above_0),
    "NewJob.queue": _short_text,
    "NewJob.idempotency_key": _short_text,
    "NewJob.priority": _job_priority,
    "NewJob.run_after_seconds": _not_negative,
    "NewJob.partner": _partner_name,
    "NewJob.max_attempts": _job_attempts,
}

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
_NEW_JOB_RULES = [(key.removeprefix("NewJob."), rule) for key, rule in RULES.items() if key.startswith("NewJob.")]
