"""Looking after the database: `pq purge`, `pq rescue`, `pq migrate`, `pq export`, `pq backup`."""

from __future__ import annotations

import csv
import json
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, TextIO, cast

import typer

import pqueue
from admin import output, render
from admin.commands.jobs import PAGE, JsonOption, QueueOption, StatusOption
from admin.context import admin, insights, store, work_queue
from admin.errors import AdminError
from admin.parsing import parse_duration
from pqueue import Insights, Job, Status

CSV_FIELDS = [
    "id",
    "queue",
    "status",
    "priority",
    "attempts",
    "max_attempts",
    "created_at",
    "started_at",
    "finished_at",
    "worker_id",
    "callback_url",
    "idempotency_key",
    "error",
    "payload",
    "result",
    "partner",
]


def purge(
    ctx: typer.Context,
    older_than: Annotated[
        float,
        typer.Option(parser=parse_duration, metavar="DURATION", help="Finished more than this long ago: 30m, 12h, 7d."),
    ],
    status: Annotated[
        list[Status] | None,
        typer.Option(
            "--status", "-s", metavar="STATUS", help="Purge jobs in this status (repeatable; default processed)."
        ),
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only count what would be purged.")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Delete old finished jobs.

    Jobs in the chosen statuses (default processed) that finished before the cut-off go, with
    their events. Asks first unless --yes; never touches under_process jobs or jobs whose
    callback is still pending.
    """
    statuses = list(dict.fromkeys(status or [Status.PROCESSED]))
    if Status.UNDER_PROCESS in statuses:
        raise typer.BadParameter("under_process jobs are running and are never purged", param_hint="'--status'")
    queue_store = work_queue(ctx)
    matched = queue_store.purge(older_than, statuses, dry_run=True)
    words = f"{' or '.join(s.value for s in statuses)} jobs finished more than {render.duration(older_than)} ago"
    if dry_run or matched == 0:
        _report_purge(as_json, older_than, statuses, matched, 0, dry_run, f"would purge {matched} {words}")
        return
    if not yes and not typer.confirm(f"Purge {matched} {words}?", err=True):
        output.note("nothing was purged")
        raise typer.Exit(1)
    with output.progress("purging", matched) as advance:
        purged = queue_store.purge(older_than, statuses, on_batch=advance)
    _report_purge(as_json, older_than, statuses, matched, purged, False, f"purged {purged} {words}")


def _report_purge(
    as_json: bool, older_than: float, statuses: list[Status], matched: int, purged: int, dry_run: bool, line: str
) -> None:
    if not as_json:
        output.say(line)
        return
    output.emit_json(
        {
            "dry_run": dry_run,
            "older_than_seconds": older_than,
            "statuses": [s.value for s in statuses],
            "matched": matched,
            "purged": purged,
        }
    )


def rescue(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Rescue jobs whose lease expired.

    They become crashed (or manual_intervention when out of attempts). Consumers do this on
    their own too; this does it now.
    """
    moved = work_queue(ctx).rescue_expired(actor="admin")
    if as_json:
        output.emit_json([{"id": job_id, "status": status.value} for job_id, status in moved])
        return
    if not moved:
        output.say("no expired lease; nothing to rescue")
    for job_id, status in moved:
        output.say(f"job {job_id}: lease expired; now {status.value}")


def migrate(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Create or upgrade the database schema.

    The only command that creates a database; safe to run again.
    """
    settings = admin(ctx).settings
    before, after = pqueue.migrate(settings=settings)
    where = insights(ctx).describe()
    if as_json:
        output.emit_json({"database": where, "before": before, "after": after})
    elif before is None:
        output.say(f"created the schema of {where} at revision {after}")
    elif before == after:
        output.say(f"{where} is already at revision {after}; nothing to do")
    else:
        output.say(f"upgraded {where} from revision {before} to {after}")


class ExportFormat(StrEnum):
    """The file formats `pq export` writes."""

    CSV = "csv"
    JSONL = "jsonl"


def export(
    ctx: typer.Context,
    status: StatusOption = None,
    queue: QueueOption = None,
    file_format: Annotated[ExportFormat, typer.Option("--format", "-f", help="csv or jsonl.")] = ExportFormat.JSONL,
    out: Annotated[Path | None, typer.Option("--output", "-o", help="Write here (default: standard output).")] = None,
) -> None:
    """Write jobs as CSV or JSON Lines.

    Oldest first; JSON Lines holds one job object (as `pq list --json`) per line.
    """
    queue_store = insights(ctx)
    with _destination(out) as stream:
        written = _write_jobs(queue_store, stream, file_format, Filters(status or None, queue))
    if out is not None:
        output.say(f"exported {written} jobs to {out.resolve()}")


@contextmanager
def _destination(out: Path | None) -> Iterator[TextIO]:
    """Standard output, or a file that appears only complete (written aside, then renamed)."""
    if out is None:
        yield sys.stdout
        return
    target = out.expanduser().resolve()
    try:
        handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - renamed into place below
            "w", encoding="utf-8", newline="", dir=target.parent, prefix=f".{target.name}.", delete=False
        )
    except OSError as exc:
        raise AdminError(f"cannot write {target}: {exc.strerror}") from None
    try:
        with handle:
            yield cast(TextIO, handle)
        os.replace(handle.name, target)
    finally:
        if os.path.exists(handle.name):
            os.unlink(handle.name)


@dataclass(frozen=True)
class Filters:
    """Which jobs to export."""

    status: list[Status] | None
    queue: str | None


def _write_jobs(queue_store: Insights, stream: TextIO, file_format: ExportFormat, filters: Filters) -> int:
    total = queue_store.count_items(status=filters.status, queue=filters.queue)
    writer = csv.DictWriter(stream, CSV_FIELDS) if file_format == ExportFormat.CSV else None
    if writer is not None:
        writer.writeheader()
    written = 0
    with output.progress("exporting", total) as advance:
        for job in _walk(queue_store, filters):
            if writer is not None:
                writer.writerow(_csv_row(job))
            else:
                stream.write(json.dumps(render.job_json(job), ensure_ascii=False) + "\n")
            written += 1
            advance(1)
    return written


def _walk(queue_store: Insights, filters: Filters) -> Iterator[Job]:
    """Every matching job, oldest first, one page in memory at a time."""
    cursor: str | None = None
    while True:
        page = queue_store.get_all_items(
            status=filters.status, queue=filters.queue, limit=PAGE, cursor=cursor, oldest_first=True
        )
        yield from page.items
        cursor = page.next_cursor
        if cursor is None:
            return


def _csv_row(job: Job) -> dict[str, object]:
    row = render.job_json(job)
    row["payload"] = render.compact(job.payload)
    row["result"] = render.compact(job.result) if job.result is not None else ""
    return {name: "" if row[name] is None else row[name] for name in CSV_FIELDS}


def backup(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="A new file to write the copy to.")],
    as_json: JsonOption = False,
) -> None:
    """Copy a SQLite database while it is in use.

    A consistent copy (VACUUM INTO) to a new file; for PostgreSQL use pg_dump.
    """
    queue_store = store(ctx)
    target = file.expanduser().resolve()
    queue_store.backup(str(target))
    if as_json:
        output.emit_json({"database": queue_store.describe(), "backup": str(target)})
    else:
        output.say(f"copied {queue_store.describe()} to {target}")
