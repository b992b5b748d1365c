"""What a measurement produces (rows of several runs) and how runs are interleaved across systems."""

from __future__ import annotations

import logging
import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

log = logging.getLogger("bench")


@dataclass
class Row:
    """One system in one test: its runs, and what makes it comparable (durability, delivery)."""

    key: str  # stable name: backend/test/system
    section: str
    test: str
    system: str
    version: str = ""
    durability: str = ""
    delivery: str = ""
    unit: str = "jobs/s"
    n: int = 0
    runs: list[float] = field(default_factory=list)
    samples: list[float] = field(default_factory=list)  # pooled latency samples (seconds), when any
    extra: dict[str, Any] = field(default_factory=dict)
    note: str = ""
    error: str = ""

    @property
    def median(self) -> float | None:
        return statistics.median(self.runs) if self.runs else None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def percentile(samples: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile (fraction in 0..1) of the samples."""
    ordered = sorted(samples)
    if not ordered:
        return math.nan
    rank = max(0, min(len(ordered) - 1, math.ceil(fraction * len(ordered)) - 1))
    return ordered[rank]


@dataclass
class Case:
    """One system's run of one test: `run()` returns the figure of one run."""

    row: Row
    run: Callable[[], float]


def interleave(cases: Sequence[Case], rounds: int) -> None:
    """Run every case once per round, round after round, so drifting load hits all systems alike.

    A failing case keeps its error in its row and is not run again.
    """
    for number in range(1, rounds + 1):
        for case in cases:
            if case.row.error:
                continue
            started = time.monotonic()
            try:
                value = case.run()
            except Exception as exc:  # noqa: BLE001 - a broken peer must not stop the benchmark
                log.exception("%s / %s failed", case.row.test, case.row.system)
                case.row.error = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
                continue
            case.row.runs.append(value)
            log.info(
                "round %d %s | %s | %s: %.4g %s (%.1fs)",
                number,
                case.row.section,
                case.row.test,
                case.row.system,
                value,
                case.row.unit,
                time.monotonic() - started,
            )


def rate(count: int, seconds: float) -> float:
    """Jobs per second, guarding against a zero-length run."""
    return count / max(seconds, 1e-9)
