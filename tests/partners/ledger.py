"""The algorithm the fair-share tests run (PQ_ALGORITHM=tests.partners.ledger:run), and its ledger.

A payload {"who": "a", "seconds": 0.4, "ledger": "/tmp/x.jsonl"} sleeps that long and appends one
line per run to the ledger: who ran, and when it started and ended on the machine's monotonic
clock (one clock for every process on the host), so a test can rebuild who held the seat when.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy

from pqueue import NewJob, PersistentQ


def run(payload: dict[str, Any]) -> dict[str, Any]:
    """Hold the seat for payload["seconds"], then write the run to the ledger."""
    start = time.monotonic()
    time.sleep(float(payload["seconds"]))
    end = time.monotonic()
    line = json.dumps({"who": payload["who"], "start": start, "end": end, "pid": os.getpid()})
    fd = os.open(payload["ledger"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)
    return {"who": payload["who"]}


@dataclass(frozen=True)
class Run:
    who: str
    start: float
    end: float

    @property
    def seconds(self) -> float:
        return self.end - self.start


def read(path: Path) -> list[Run]:
    """The ledger's runs in the order they started."""
    if not path.exists():
        return []
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return sorted((Run(line["who"], line["start"], line["end"]) for line in lines), key=lambda run: run.start)


def shares(runs: list[Run]) -> dict[str, float]:
    """Each partner's part of the seat time of these runs, 0 to 1."""
    total = sum(run.seconds for run in runs)
    held: dict[str, float] = {}
    for run in runs:
        held[run.who] = held.get(run.who, 0.0) + run.seconds
    return {who: seconds / total for who, seconds in held.items()}


def overlaps(runs: list[Run]) -> list[tuple[Run, Run]]:
    """Pairs of these runs that held a seat at the same time."""
    ordered = sorted(runs, key=lambda run: run.start)
    return [(a, b) for i, a in enumerate(ordered) for b in ordered[i + 1 :] if b.start < a.end]


def submit(q: PersistentQ, path: Path, who: str, seconds: float, count: int, partner: str | None) -> None:
    """`count` jobs of `who`, each holding the seat `seconds`, submitted as `partner`."""
    payload = {"who": who, "seconds": seconds, "ledger": str(path)}
    q.put_items([NewJob(payload, partner=partner) for _ in range(count)])


def tag(q: PersistentQ, partner: str, queue: str = "default") -> float:
    """The partner's seat-seconds per unit of weight in the queue, as the claim reads it."""
    with q.engine.connect() as conn:
        found = conn.execute(
            sqlalchemy.text("SELECT tag FROM pq_fair WHERE queue = :q AND partner = :p"), {"q": queue, "p": partner}
        ).scalar()
    return float(found or 0.0)
