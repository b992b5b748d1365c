"""Operator actions, bound to what the operator saw.

An action is recorded when its button is pressed, with each job id and the status shown on the
screen. Confirming applies it with `expect=` that status, so a job that moved meanwhile (an
auto-refresh, another operator, the consumer) is refused by the library, never acted on blindly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from pqueue import FINAL, Job, PersistentQInterface, PQError, Status

ACTOR = "dashboard"
Operation = Literal["requeue", "fail", "cancel", "redeliver"]

# Which buttons a job in each status gets. The library stays the judge: these only hide
# buttons that could not succeed.
REQUEUE_FROM = (Status.CRASHED, Status.MANUAL_INTERVENTION, Status.CANCELLED)
CANCEL_FROM = (Status.UNPROCESSED, Status.CRASHED, Status.UNDER_PROCESS)
FAIL_FROM = tuple(s for s in Status if s != Status.PROCESSED)

VERBS: dict[str, str] = {
    "requeue": "requeue",
    "fail": "mark failed",
    "cancel": "cancel",
    "redeliver": "redeliver the callback of",
}
LABELS: dict[str, str] = {
    "requeue": "Requeue",
    "fail": "Mark failed",
    "cancel": "Cancel job",
    "redeliver": "Redeliver callback",
}
DONE: dict[str, str] = {
    "requeue": "requeued",
    "fail": "marked failed",
    "cancel": "cancelled",
    "redeliver": "callback queued again for",
}


@dataclass(frozen=True)
class PendingAction:
    """An action waiting for confirmation: the operation and the jobs as they were shown."""

    operation: Operation
    targets: tuple[tuple[int, Status], ...]
    reason: str | None = None
    origin: str = "detail"

    def describe(self) -> str:
        """'requeue job 7 (crashed)' or 'requeue 12 jobs: 3, 5, 8, … (crashed ×10, cancelled ×2)'."""
        verb = VERBS[self.operation]
        if len(self.targets) == 1:
            job_id, status = self.targets[0]
            text = f"{verb} job {job_id} (shown as {status.value})"
        else:
            ids = ", ".join(str(job_id) for job_id, _ in self.targets[:10])
            more = ", …" if len(self.targets) > 10 else ""
            tally: dict[str, int] = {}
            for _, status in self.targets:
                tally[status.value] = tally.get(status.value, 0) + 1
            shown = ", ".join(f"{name} ×{count}" for name, count in tally.items())
            text = f"{verb} {len(self.targets)} jobs: {ids}{more} (shown as {shown})"
        if self.reason:
            text += f", reason: {self.reason!r}"
        return text


@dataclass
class Outcome:
    """What happened to each job of a confirmed action."""

    operation: Operation
    done: list[int] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def available(job: Job) -> list[Operation]:
    """The actions that make sense for a job in its current status."""
    operations: list[Operation] = []
    if job.status in REQUEUE_FROM:
        operations.append("requeue")
    if job.status in CANCEL_FROM and job.stop_request is None:
        operations.append("cancel")
    if job.status in FAIL_FROM and job.stop_request is None:
        operations.append("fail")
    if job.status in FINAL and job.callback_url:
        operations.append("redeliver")
    return operations


def apply(store: PersistentQInterface, action: PendingAction) -> Outcome:
    """Run a confirmed action job by job; each refusal is kept as the library's one-line reason."""
    outcome = Outcome(action.operation)
    for job_id, seen in action.targets:
        try:
            job = _apply_one(store, action, job_id, seen)
        except PQError as exc:
            outcome.refused.append(str(exc))
            continue
        if job is not None and job.stop_request is not None:
            outcome.notes.append(f"job {job_id} is running: its consumer stops it at its next heartbeat")
        else:
            outcome.done.append(job_id)
    return outcome


def _apply_one(store: PersistentQInterface, action: PendingAction, job_id: int, seen: Status) -> Job | None:
    if action.operation == "requeue":
        return store.requeue(job_id, actor=ACTOR, expect=seen)
    if action.operation == "cancel":
        return store.cancel(job_id, actor=ACTOR, expect=seen, reason=action.reason or "cancelled from the dashboard")
    if action.operation == "fail":
        return store.fail(job_id, action.reason or "", actor=ACTOR, expect=seen)
    _redeliver(store, job_id, seen)
    return None


def _redeliver(store: PersistentQInterface, job_id: int, seen: Status) -> None:
    # redeliver takes no expect=; check the status first so a job that moved since is left alone.
    current = store.get_job(job_id).status
    if current != seen:
        raise PQError(f"job {job_id} is {current.value}; redeliver needs {seen.value} (as it was shown)")
    store.redeliver(job_id, actor=ACTOR)


def summary(outcome: Outcome) -> str | None:
    """One success line, or None when nothing was done."""
    if not outcome.done:
        return None
    ids = ", ".join(str(i) for i in outcome.done[:20]) + (", …" if len(outcome.done) > 20 else "")
    noun = "job" if len(outcome.done) == 1 else f"{len(outcome.done)} jobs:"
    return f"{DONE[outcome.operation]} {noun} {ids}"
