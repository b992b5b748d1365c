"""Structured log lines: `event=claimed job=42 attempt=1/3 …`, one line per event, job id in each."""

from __future__ import annotations

import json
import logging
import re

_PLAIN = re.compile(r"^[A-Za-z0-9_./:@+\-]+$")


def format_event(name: str, job: int | None = None, **fields: object) -> str:
    """The message part of one event line; values with spaces or newlines are quoted."""
    parts = [f"event={name}", f"job={'-' if job is None else job}"]
    parts += [f"{key}={_value(value)}" for key, value in fields.items()]
    return " ".join(parts)


def event(
    logger: logging.Logger, name: str, job: int | None = None, *, level: int = logging.INFO, **fields: object
) -> None:
    """Log one event as a single key=value line."""
    if logger.isEnabledFor(level):
        logger.log(level, format_event(name, job, **fields))


def _value(value: object) -> str:
    text = "-" if value is None else str(value)
    if text and _PLAIN.match(text):
        return text
    return json.dumps(text, ensure_ascii=False)
