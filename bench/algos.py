"""Algorithms the benchmark's consumer runs (PQ_ALGORITHM=bench.algos:mark or bench.algos:noop).

`mark` appends "<tag> start <unix time>" and "<tag> end <unix time>" lines to the file the
payload names, so dispatch latency and the gaps between jobs are read after the fact.
"""

from __future__ import annotations

import os
import time
from typing import Any


def _append(path: str, line: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


def mark(payload: dict[str, Any]) -> dict[str, Any]:
    """Record the start, sleep payload["sleep"] seconds (if any), record the end; no "log": a no-op."""
    if "log" not in payload:
        return {"ok": True}
    started = time.time()
    _append(payload["log"], f"{payload['tag']} start {started:.6f}")
    if payload.get("sleep"):
        time.sleep(float(payload["sleep"]))
    _append(payload["log"], f"{payload['tag']} end {time.time():.6f}")
    return {"ok": True}


def noop(payload: Any) -> dict[str, Any]:
    """Do nothing: what is left is the queue's own cost per job."""
    return {"ok": True}


def read_marks(path: str) -> dict[str, dict[str, float]]:
    """tag -> {"start": t, "end": t} from a mark log."""
    marks: dict[str, dict[str, float]] = {}
    if not os.path.exists(path):
        return marks
    with open(path) as handle:
        for line in handle:
            parts = line.split()
            if len(parts) == 3:
                marks.setdefault(parts[0], {})[parts[1]] = float(parts[2])
    return marks
