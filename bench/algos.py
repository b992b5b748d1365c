"""Algorithms the benchmark's consumer runs (PQ_ALGORITHM=bench.algos:mark or bench.algos:noop).

`mark` appends "<tag> start <unix time>" and "<tag> end <unix time>" lines to the file the
payload names, so dispatch latency and the gaps between jobs are read after the fact.
"""

from __future__ import annotations

import os
import time
from typing import Any


def mark(payload: dict[str, Any]) -> dict[str, Any]:
    """Record the start, sleep payload["sleep"] seconds (if any), record the end; no "log": a no-op.

    The log is opened after the start is read and closed after the end's line is written, and the
    end's line is made before its clock is read: the only work of the mark's own left between its
    end and the algorithm's return is one write(2) and one close(2) (a few µs), so the gap between
    two runs is the queue's hand-off, not the bench's bookkeeping (opening the file and formatting
    the line after reading the clock counted about 0.27 ms in every gap)."""
    if "log" not in payload:
        return {"ok": True}
    started = time.time()
    fd = os.open(payload["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{payload['tag']} start {started:.6f}\n".encode())
        if payload.get("sleep"):
            time.sleep(float(payload["sleep"]))
        end = f"{payload['tag']} end %.6f\n"
        os.write(fd, (end % time.time()).encode())
    finally:
        os.close(fd)
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
