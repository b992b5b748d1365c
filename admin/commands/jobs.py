"""Reading and submitting jobs: `pq list`, `pq show`, `pq enqueue`."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.text import Text

from admin import output, render
from admin.context import admin, store, work_queue
from admin.parsing import check_callback_url, parse_duration, read_payload
from pqueue import CLAIMABLE, Event, Hold, Insights, Job, NewJob, Status, Wait

# A job with a wait to show: waiting, or running (its finish only).
WAITING_OR_RUNNING = {*CLAIMABLE, Status.UNDER_PROCESS}

JsonOption = Annotated[bool, typer.Option("--json", help="Write JSON for scripts instead of a table.")]
STATUSES = ", ".join(s.value for s in Status)
StatusOption = Annotated[
    list[Status] | None,
    typer.Option("--status", "-s", metavar="STATUS", help=f"Only jobs in this status (repeatable): {STATUSES}."),
]
QueueOption = Annotated[str | None, typer.Option("--queue", "-q", help="Only jobs of this queue.")]
PartnerOption = Annotated[str | None, typer.Option("--partner", "-p", metavar="NAME", help="Only this partner's jobs.")]
PAGE = 1000  # the largest page pqueue hands out


def fetch_jobs(queue_store: Insights, limit: int | None, *, oldest_first: bool = False, **filters: Any) -> list[Job]:
    """Up to `limit` jobs (None: all), page by page."""
    found: list[Job] = []
    cursor: str | None = None
    while limit is None or len(found) < limit:
        size = PAGE if limit is None else min(PAGE, limit - len(found))
        page = queue_store.get_all_items(limit=size, cursor=cursor, oldest_first=oldest_first, **filters)
        found.extend(page.items)
        cursor = page.next_cursor
        if cursor is None:
            break
    return found


def list_jobs(
    ctx: typer.Context,
    status: StatusOption = None,
    queue: QueueOption = None,
    partner: PartnerOption = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="At most this many jobs.")] = 50,
    since: Annotated[
        float | None,
        typer.Option(parser=parse_duration, metavar="DURATION", help="Only jobs created this recently: 30m, 12h, 7d."),
    ] = None,
    oldest_first: Annotated[bool, typer.Option("--oldest-first", help="Oldest first (default: newest).")] = False,
    as_json: JsonOption = False,
) -> None:
    """List jobs, newest first.

    Columns: id, queue, partner, status, priority, attempts, age, last error (after what an
    operator decided and why, when one failed or cancelled the job), start of the payload. A
    waiting job a consumer holds to start next in its seat reads `unprocessed (held)`.
    """
    queue_store = store(ctx)
    filters: dict[str, Any] = {"status": status or None, "queue": queue, "since_seconds": since, "partner": partner}
    jobs = fetch_jobs(queue_store, limit, oldest_first=oldest_first, **filters)
    if not jobs and partner is not None:
        queue_store.partner(partner)  # an unknown partner is an error, not an empty list
    holds = queue_store.holds([job.id for job in jobs if job.status in CLAIMABLE])
    if as_json:
        output.emit_json([render.job_json(job, holds.get(job.id)) for job in jobs])
        return
    now = queue_store.now()
    columns = ("id", "queue", "partner", "status", "pri", "attempts", "age", "last error", "payload")
    table = output.table(*columns, squeeze=("last error", "payload"))
    for job in jobs:
        table.add_row(
            str(job.id),
            output.plain(job.queue),
            output.plain(job.partner),
            output.job_status_text(job, held=job.id in holds),
            str(job.priority),
            f"{job.attempts}/{job.max_attempts}",
            render.duration((now - job.created_at).total_seconds()),
            output.cut(render.why(job)),
            output.cut(render.shorten(render.compact(job.payload), 40)),
        )
    output.show(table)
    if len(jobs) == limit:
        total = queue_store.count_items(**filters)
        if total > limit:
            output.note(f"showing {limit} of {total} jobs; use --limit to see more")


def show_job(
    ctx: typer.Context,
    job_id: Annotated[int, typer.Argument(metavar="ID", help="The job's id.")],
    as_json: JsonOption = False,
) -> None:
    """Show one job in full.

    Every field, the payload and result, the error with its traceback, the callback delivery
    and the timeline of its events; for a waiting job a consumer holds to start next in its seat,
    which consumer holds it, behind which running job, since when.
    """
    queue_store = store(ctx)
    job = queue_store.get_job(job_id)
    events = queue_store.events(job_id)
    wait = queue_store.wait(job_id) if job.status in WAITING_OR_RUNNING else None
    hold = queue_store.holds([job_id]).get(job_id) if job.status in CLAIMABLE else None
    if as_json:
        output.emit_json(render.job_detail_json(job, events, wait, hold))
        return
    policy = queue_store.queue_settings(job.queue)  # the queue's stored timeout, else PQ_JOB_TIMEOUT
    _show_fields(job, policy.job_timeout if policy is not None else admin(ctx).settings.job_timeout, hold)
    _show_block("payload", json.dumps(job.payload, indent=2, ensure_ascii=False))
    if job.result is not None:
        _show_block("result", json.dumps(job.result, indent=2, ensure_ascii=False))
    if job.operator_verdict and job.operator_reason:
        _show_block(job.operator_verdict, job.operator_reason.rstrip())
    if job.error:
        _show_block("last error", job.error.rstrip())
    if wait is not None:
        _show_block("wait", _wait_lines(wait))
    _show_timeline(events)


def _wait_lines(wait: Wait) -> str:
    """Where the job is in line, when it starts and finishes, and why it waits, for people."""
    lines = []
    if wait.position is not None:
        approximate = "" if wait.position.exact else " (extrapolated)"
        lines.append(
            f"position   {wait.position.total} ahead: {wait.position.own} of its partner's,"
            f" {wait.position.others} of others{approximate}"
        )
    for name, estimate in (("start", wait.eta_start), ("finish", wait.eta_finish)):
        if estimate is not None:
            spread = f"p50 {render.human_time(estimate.p50)}  p90 {render.human_time(estimate.p90)}"
            lines.append(f"{name:<10} {spread}  latest {render.human_time(estimate.latest)}")
            if estimate.why:
                lines.append(f"{'':<10} ({estimate.why})")
    lines.append(f"confidence {wait.confidence}   computed {render.human_time(wait.computed_at)}")
    for reason in wait.reasons:
        until = f" (until {render.human_time(reason.until)})" if reason.until else ""
        lines.append(f"why        {reason.code}: {reason.message}{until}")
    return "\n".join(lines)


def _show_fields(job: Job, timeout: float, hold: Hold | None) -> None:
    rows: list[tuple[str, Text | str]] = [
        ("status", output.job_status_text(job, held=hold is not None)),
        *([("held", output.plain(render.held_words(hold)))] if hold is not None else []),
        ("queue", output.plain(job.queue)),
        ("partner", output.plain(job.partner)),
        ("priority", str(job.priority)),
        ("attempts", f"{job.attempts} of {job.max_attempts}"),
        ("created", render.human_time(job.created_at)),
        ("run after", render.human_time(job.run_after)),
        ("started", render.human_time(job.started_at)),
        ("finished", render.human_time(job.finished_at)),
    ]
    if job.status == Status.UNDER_PROCESS:
        rows.append(("worker", output.plain(f"{job.worker_id} (lease {job.lease_id})")))
        rows.append(("lease expires", render.human_time(job.lease_expires_at)))
        rows.append(("timeout", render.duration(timeout)))
    if job.stop_request:
        rows.append(("stop requested", output.plain(f"{job.stop_request.value}: {job.stop_reason or '-'}")))
    rows.append(("idempotency key", output.plain(job.idempotency_key or "-")))
    rows.append(("callback", output.plain(job.callback_url or "-")))
    if job.callback_url:
        rows.append(("delivery", output.plain(_delivery_line(job))))
    grid = output.table("field", "value")
    grid.show_header = False
    grid.title = f"job {job.id}"
    for name, value in rows:
        grid.add_row(name, value)
    output.show(grid)


def _delivery_line(job: Job) -> str:
    delivery = job.delivery
    if delivery is None:
        return "none yet (sent when the job reaches a final state)"
    line = f"{delivery.status.value} after {delivery.attempts} attempt(s)"
    if delivery.last_status_code is not None:
        line += f", last answer HTTP {delivery.last_status_code}"
    if delivery.last_error:
        line += f", last error: {render.last_line(delivery.last_error)}"
    return line


def _show_block(title: str, body: str) -> None:
    output.show(Text(f"\n{title}:", style="bold"))
    output.show(Text("  " + body.replace("\n", "\n  ")))


def _show_timeline(events: list[Event]) -> None:
    output.show(Text("\ntimeline:", style="bold"))
    table = output.table("when", "from", "to", "by", "message")
    for event in events:
        table.add_row(
            render.human_time(event.at),
            output.status_text(event.from_status) if event.from_status else "-",
            output.status_text(event.to_status),
            output.plain(event.actor),
            output.plain(event.message or ""),
        )
    output.show(table)


def enqueue(
    ctx: typer.Context,
    payload: Annotated[
        str, typer.Argument(metavar="PAYLOAD", help="JSON text, @FILE holding JSON, or - to read standard input.")
    ],
    priority: Annotated[int, typer.Option(help="Lower runs first.")] = 0,
    queue: Annotated[str | None, typer.Option("--queue", "-q", help="Queue (default PQ_QUEUE).")] = None,
    callback_url: Annotated[str | None, typer.Option(help="Where the outcome is POSTed.")] = None,
    idempotency_key: Annotated[str | None, typer.Option(help="Submitting the same key again adds nothing.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Submit a job; prints its id."""
    settings = admin(ctx).settings
    value = read_payload(payload)
    if callback_url is not None:
        check_callback_url(callback_url, settings)
    new_job = NewJob(value, queue=queue, priority=priority, callback_url=callback_url, idempotency_key=idempotency_key)
    result = work_queue(ctx).put_items([new_job], actor="admin")[0]
    if as_json:
        output.emit_json({"id": result.id, "created": result.created})
        return
    output.say(str(result.id))
    if not result.created:
        output.note(f"job {result.id} already has this idempotency key; nothing new was stored")
