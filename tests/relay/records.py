"""The agents' --record lines read as runs: who ran which job when, and how many runs at once."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class AgentRun:
    """One job message an agent started, from its start line to its finish line."""

    job_id: int
    lease_id: int
    agent: str
    start: float
    end: float | None  # None: no finish line (still running, or the agent was killed)
    outcome: str | None


def read_records(directory: Path) -> list[dict[str, Any]]:
    """Every agent's start and finish lines (the *.jsonl files of a directory), in time order."""
    lines = []
    for path in directory.glob("*.jsonl"):
        lines += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return sorted(lines, key=lambda line: line["t"])


def agent_runs(records: Iterable[dict[str, Any]]) -> list[AgentRun]:
    """Pair each start with its agent's next finish. An agent works on one job at a time, so a
    start that follows an unfinished run ends that run (the agent gave up on it unrecorded)."""
    open_runs: dict[str, dict[str, Any]] = {}
    runs = []
    for line in records:
        started = open_runs.pop(line["agent"], None)
        if started is not None:
            ended = line["event"] != "start"
            runs.append(_run(started, line["t"], line.get("outcome") if ended else None))
        if line["event"] == "start":
            open_runs[line["agent"]] = line
    runs += [_run(started, None, None) for started in open_runs.values()]
    return sorted(runs, key=lambda run: run.start)


def _run(started: dict[str, Any], end: float | None, outcome: str | None) -> AgentRun:
    return AgentRun(started["job_id"], started["lease_id"], started["agent"], started["t"], end, outcome)


def starts_per_job(runs: Iterable[AgentRun]) -> Counter[int]:
    return Counter(run.job_id for run in runs)


def most_at_once(runs: Iterable[AgentRun], now: float) -> dict[int, int]:
    """For each job, the most of its runs that were going at the same moment (a run with no
    finish line counts until `now`)."""
    moments: dict[int, list[tuple[float, int]]] = {}
    for run in runs:
        moments.setdefault(run.job_id, []).extend([(run.start, 1), (now if run.end is None else run.end, -1)])
    peaks = {}
    for job_id, steps in moments.items():
        going = peak = 0
        for _, step in sorted(steps):  # at one instant an end (-1) sorts before a start
            going += step
            peak = max(peak, going)
        peaks[job_id] = peak
    return peaks
