"""Turning command-line text into values: durations, JSON payloads, callback URLs.

Each raises typer.BadParameter, so a bad value is a usage error (exit 2) before anything is read
or written.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer

import pqueue
from pqueue import InvalidInput, Settings
from pqueue.validation import duration_text


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


def read_payload(source: str) -> Any:
    """The payload argument: JSON text, @FILE holding JSON, or - for standard input."""
    if source == "-":
        text, where = sys.stdin.read(), "standard input"
    elif source.startswith("@"):
        text, where = _read_file(source[1:]), source[1:]
    else:
        text, where = source, "the payload"
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise typer.BadParameter(f"{where} is not JSON: {exc}", param_hint="'PAYLOAD'") from None


def _read_file(name: str) -> str:
    path = Path(name).expanduser()
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise typer.BadParameter(f"cannot read {path.resolve()}: {reason}", param_hint="'PAYLOAD'") from None


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
