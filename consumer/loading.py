"""Finding the algorithm named by PQ_ALGORITHM, calling it, and describing its failures."""

from __future__ import annotations

import importlib
import inspect
import json
import os
import sys
import traceback
from collections.abc import Callable
from typing import Any

Algorithm = Callable[..., Any]

# How much of a traceback a crashed job keeps: enough to find the line, not a whole log.
TRACEBACK_LINES = 30
TRACEBACK_CHARS = 4000


class AlgorithmUnavailable(Exception):
    """PQ_ALGORITHM cannot be used: bad format, module missing, not a function, import failed."""


def parse_spec(spec: str) -> tuple[str, str]:
    """Split 'package.module:function'; a malformed value is one clear error."""
    module, sep, function = spec.strip().partition(":")
    if not sep or not module or not function or not function.isidentifier():
        raise AlgorithmUnavailable(
            f"PQ_ALGORITHM={spec!r} is not 'module:function' (for example consumer.algorithms.add:run)"
        )
    return module, function


def load_algorithm(spec: str) -> Algorithm:
    """Import the algorithm, with the working directory importable as under `python -m`."""
    module_name, function_name = parse_spec(spec)
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise AlgorithmUnavailable(
            f"PQ_ALGORITHM={spec!r}: importing {module_name} failed: {type(exc).__name__}: {exc}"
        ) from exc
    function = getattr(module, function_name, None)
    if not callable(function):
        raise AlgorithmUnavailable(f"PQ_ALGORITHM={spec!r}: {module_name} has no function {function_name}")
    return function  # type: ignore[no-any-return]


def wants_settings(function: Algorithm) -> bool:
    """True when the algorithm takes a second argument: it then receives the consumer's Settings."""
    try:
        inspect.signature(function).bind(None, None)
    except TypeError:
        return False
    except ValueError:  # no signature (a builtin): call it with the payload only
        return False
    return True


def call_algorithm(function: Algorithm, payload: Any, settings: Any) -> tuple[str, str]:
    """Run the algorithm once: ('ok', result as JSON text), or ('error' or 'permanent' for an
    input the algorithm says can never succeed (pqueue.PermanentError), traceback tail)."""
    try:
        result = function(payload) if settings is None else function(payload, settings)
    except BaseException as exc:  # noqa: BLE001 - SystemExit and KeyboardInterrupt are job errors too
        # Asked of the exception, not with isinstance: the job process does not import pqueue.
        kind = "permanent" if getattr(exc, "pq_permanent", False) is True else "error"
        return kind, describe_exception(exc)
    try:
        return "ok", json.dumps(result, allow_nan=False)
    except (TypeError, ValueError) as exc:
        return "error", f"TypeError: the algorithm's result is not JSON ({exc})"


def describe_exception(exc: BaseException) -> str:
    """The tail of the traceback; its last line is the exception type and message."""
    lines = "".join(traceback.format_exception(exc)).rstrip().splitlines()
    if len(lines) > TRACEBACK_LINES:
        lines = ["…", *lines[-TRACEBACK_LINES:]]
    text = "\n".join(lines)
    if len(text) > TRACEBACK_CHARS:
        text = "…" + text[-TRACEBACK_CHARS:]
    return text
