"""Turning command-line text into values: durations, rates, JSON payloads, files, callback URLs.

Each raises typer.BadParameter, so a bad value is a usage error (exit 2) before anything is read
or written.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import typer

import pqueue
from pqueue import InvalidInput, Settings, duration_text

_RATE = re.compile(r"^(\d+)/min$")


def parse_duration(text: str) -> float:
    """'30m', '12h', '7d' (also s and w) as seconds."""
    seconds = duration_text(text)
    if seconds is None:
        raise typer.BadParameter(f"{text!r} is not a duration; use a number and a unit: 90s, 30m, 12h, 7d or 2w")
    return seconds


def parse_seconds(text: str) -> float:
    """Seconds as a bare number ('4', '0.5') or a duration ('90s', '30m', '1h')."""
    try:
        return float(text)
    except ValueError:
        return parse_duration(text)


def parse_rate(text: str) -> int:
    """'60/min' as submissions per minute, a partner's rate limit (the library refuses 0)."""
    match = _RATE.match(text.strip().lower())
    if match is None:
        raise typer.BadParameter(f"{text!r} is not a rate; use a whole number per minute: 60/min")
    return int(match.group(1))


def read_payload(source: str) -> Any:
    """The payload argument: JSON text, @FILE holding JSON, or - for standard input."""
    if source == "-":
        text, where = sys.stdin.read(), "standard input"
    elif source.startswith("@"):
        text, where = read_text_file(source[1:], "'PAYLOAD'"), source[1:]
    else:
        text, where = source, "the payload"
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise typer.BadParameter(f"{where} is not JSON: {exc}", param_hint="'PAYLOAD'") from None


def read_text_file(name: str, param_hint: str) -> str:
    """A UTF-8 file's text; a file that cannot be read is a bad value of `param_hint`."""
    path = Path(name).expanduser()
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise typer.BadParameter(f"cannot read {path.resolve()}: {reason}", param_hint=param_hint) from None


def check_callback_url(url: str, settings: Settings) -> str:
    """A callback URL the library accepts (http(s), a host PQ_CALLBACK_ALLOW permits)."""
    try:
        pqueue.check_callback_url(url, settings.callback_allowed_hosts)
    except InvalidInput as exc:
        raise typer.BadParameter(str(exc).removeprefix("callback_url: "), param_hint="'--callback-url'") from None
    return url


def unique(ids: list[int]) -> list[int]:
    """The ids in the order given, each once."""
    return list(dict.fromkeys(ids))
