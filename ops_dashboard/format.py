"""Numbers and times written the way an operator reads them."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any


def duration(seconds: float | None) -> str:
    """'45s', '3m 12s', '2h 5m', '3d 4h'; a dash when there is nothing to measure."""
    if seconds is None:
        return "—"
    total = max(0, int(round(seconds)))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"


def rough_duration(seconds: float | None) -> str:
    """Only the largest unit of duration(): '15m', '2h', '3d', '45s', to fit a header metric."""
    return duration(seconds).split(" ")[0]


def moment(at: datetime | None) -> str:
    """A UTC time to the second, as the database stored it."""
    if at is None:
        return ""
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def compact_json(value: Any, limit: int = 80) -> str:
    """A one-line preview of a payload for the table."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def first_line(text: str | None, limit: int = 80) -> str:
    """The headline of an error (tracebacks end with the interesting line, so take the last)."""
    if not text:
        return ""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    line = lines[-1].strip() if lines else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


def plain(text: str) -> str:
    """Text shown as it is inside markdown (no emphasis, links or colour tags from its characters)."""
    return "".join("\\" + ch if ch in "\\`*_{}[]<>()#+-.!|:~$" else ch for ch in text)
