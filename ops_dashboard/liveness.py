"""Is something working the queue? Answered from the worker registry, not from job activity,
so a consumer that is idle but alive shows green."""

from __future__ import annotations

from dataclasses import dataclass

from ops_dashboard.format import duration
from pqueue import RunningJob, Worker, lease_margin


@dataclass(frozen=True)
class Liveness:
    """The header's verdict: green or red, a word, and why."""

    healthy: bool
    value: str
    detail: str


def alive_within(lease_seconds: float) -> float:
    """A worker seen this recently counts as alive (it touches the registry while idle)."""
    return 2 * lease_seconds


def _holds_healthy_lease(worker: Worker, running: list[RunningJob], margin: float) -> bool:
    return any(job.worker_id == worker.id and job.lease_remaining_seconds > margin for job in running)


def alive_ids(workers: list[Worker], running: list[RunningJob], lease_seconds: float) -> list[str]:
    """The workers that count as alive: seen within alive_within, or holding a lease being renewed."""
    margin, recent = lease_margin(lease_seconds), alive_within(lease_seconds)
    return [w.id for w in workers if w.seen_seconds_ago <= recent or _holds_healthy_lease(w, running, margin)]


def liveness(workers: list[Worker], running: list[RunningJob], lease_seconds: float) -> Liveness:
    """Red when no worker was seen recently or a running job's lease is about to run out."""
    margin = lease_margin(lease_seconds)
    expiring = [job for job in running if job.lease_remaining_seconds <= margin]
    if expiring:
        job = expiring[0]
        if job.lease_remaining_seconds <= 0:
            detail = f"job {job.id}: lease expired"
        else:
            detail = f"job {job.id}: lease ends in {duration(job.lease_remaining_seconds)}"
        return Liveness(False, "at risk", detail)
    living = set(alive_ids(workers, running, lease_seconds))
    alive = [w for w in workers if w.id in living]
    if alive:
        freshest = min(alive, key=lambda w: w.seen_seconds_ago)
        return Liveness(True, f"{len(alive)} alive", f"seen {duration(freshest.seen_seconds_ago)} ago")
    if workers:
        freshest = min(workers, key=lambda w: w.seen_seconds_ago)
        return Liveness(False, "none", f"last seen {duration(freshest.seen_seconds_ago)} ago")
    return Liveness(False, "none", "never registered")
