"""Steering jobs one id at a time: `pq requeue`, `pq fail`, `pq cancel`, `pq redeliver`.

Each id is its own library call and so its own transaction: an id is moved entirely or not at
all, and a refusal for one id does not stop the others. Every id gets a line saying what happened;
the exit code is 1 when any id was refused.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

import typer

from admin import output, render
from admin.commands.jobs import JsonOption, fetch_jobs
from admin.context import operations, store
from admin.parsing import unique
from pqueue import Job, PQError, Status

IdsArgument = Annotated[list[int] | None, typer.Argument(metavar="ID", help="Job ids.", show_default=False)]
RequiredIds = Annotated[list[int], typer.Argument(metavar="ID", help="Job ids.", show_default=False)]
STOP_NOTE = "the consumer stops it at its next heartbeat"


@dataclass
class Outcome:
    """What one id's action did, for its line of output and its JSON entry."""

    id: int
    message: str
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "ok": self.error is None, **self.extra, "message": self.message, "error": self.error}


# An operator's reason never replaces the error that explained the failure.
REASON_HELP = "Why (stored beside the job's last error, which stays)."


def run_each(ids: list[int], act: Callable[[int], Outcome], as_json: bool) -> None:
    """Apply act to every id, report each, and exit 1 if any was refused."""
    outcomes = []
    for job_id in unique(ids):
        try:
            outcome = act(job_id)
        except PQError as exc:
            outcome = Outcome(job_id, "refused", error=str(exc).strip().splitlines()[0])
        outcomes.append(outcome)
        if outcome.error is not None:
            output.error(outcome.error)
        elif not as_json:
            output.say(f"job {job_id}: {outcome.message}")
    if as_json:
        output.emit_json([outcome.as_json() for outcome in outcomes])
    if any(outcome.error is not None for outcome in outcomes):
        raise typer.Exit(1)


def job_outcome(job: Job, done: str, operation: str) -> Outcome:
    """The outcome of a job action; a running job only records the request."""
    stop_requested = job.status == Status.UNDER_PROCESS and job.stop_request is not None
    message = f"{operation} requested; {STOP_NOTE}" if stop_requested else done
    return Outcome(job.id, message, extra={"status": job.status.value, "stop_requested": stop_requested})


def requeue(
    ctx: typer.Context,
    job_ids: IdsArgument = None,
    status: Annotated[
        Status | None,
        typer.Option("--status", "-s", metavar="STATUS", help="With --all: requeue every job in this status."),
    ] = None,
    every: Annotated[bool, typer.Option("--all", help="Requeue every job in --status (instead of ids).")] = False,
    as_json: JsonOption = False,
) -> None:
    """Requeue jobs with fresh attempts.

    From crashed, manual_intervention or cancelled back to unprocessed; the timeline keeps the
    history. Give ids, or --status S --all for every job in one status.
    """
    _check_requeue_arguments(job_ids or [], status, every)
    queue_store = store(ctx)
    if job_ids:
        ids, expect = job_ids, None
    else:
        # Each job must still be in that status when its turn comes: one that moved since is refused.
        ids = [job.id for job in fetch_jobs(queue_store, None, oldest_first=True, status=status)]
        expect = status
    if not ids:
        if as_json:
            output.emit_json([])
        else:
            output.say(f"no job is {status}; nothing to requeue")
        return

    def act(job_id: int) -> Outcome:
        job = queue_store.requeue(job_id, actor="admin", expect=expect)
        return job_outcome(job, f"requeued; {job.status.value} with fresh attempts", "requeue")

    run_each(ids, act, as_json)


def _check_requeue_arguments(ids: list[int], status: Status | None, every: bool) -> None:
    """Ids, or --status S --all: never both, never neither (a bulk move is always asked for)."""
    if ids and (every or status):
        raise typer.BadParameter("give job ids, or --status S --all, not both")
    if not ids and not (every and status):
        raise typer.BadParameter("give job ids, or --status S --all to requeue every job in a status")


def fail(
    ctx: typer.Context,
    job_ids: RequiredIds,
    reason: Annotated[str, typer.Option("--reason", "-r", help=REASON_HELP)],
    as_json: JsonOption = False,
) -> None:
    """Move jobs to manual_intervention.

    The reason becomes the job's error. A running job is stopped by its consumer first.
    """
    queue_store = operations(ctx)

    def act(job_id: int) -> Outcome:
        return job_outcome(queue_store.fail(job_id, reason, actor="admin"), "failed; manual_intervention", "fail")

    run_each(job_ids, act, as_json)


def cancel(
    ctx: typer.Context,
    job_ids: RequiredIds,
    reason: Annotated[str | None, typer.Option("--reason", "-r", help=REASON_HELP)] = None,
    as_json: JsonOption = False,
) -> None:
    """Cancel jobs.

    A waiting or crashed job is cancelled at once; for a running one its consumer is asked to
    kill the run at its next heartbeat.
    """
    queue_store = operations(ctx)

    def act(job_id: int) -> Outcome:
        job = queue_store.cancel(job_id, actor="admin", reason=reason)
        return job_outcome(job, "cancelled", "cancel")

    run_each(job_ids, act, as_json)


def redeliver(ctx: typer.Context, job_ids: RequiredIds, as_json: JsonOption = False) -> None:
    """Send finished jobs' callbacks again.

    The last outcome is delivered again with fresh delivery attempts; the algorithm does not run.
    """
    queue_store = operations(ctx)

    def act(job_id: int) -> Outcome:
        delivery = queue_store.redeliver(job_id, actor="admin")
        message = f"callback to {delivery.url} queued again (delivery {delivery.id})"
        return Outcome(job_id, message, extra={"delivery": render.delivery_json(delivery)})

    run_each(job_ids, act, as_json)
