"""`pq stats`: the numbers an operator looks at first, once or refreshed in place."""

from __future__ import annotations

import time
from contextlib import nullcontext, suppress
from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any

import typer
from rich.console import Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from admin import output, render
from admin.commands.jobs import JsonOption
from admin.context import admin, insights
from pqueue import Insights, Settings, Status, ThroughputPoint

HOUR = 3600
SPARKS = "▁▂▃▄▅▆▇█"


def snapshot(queue_store: Insights, settings: Settings) -> dict[str, Any]:
    """Everything `pq stats` shows, in its documented JSON shape."""
    stats = queue_store.stats()
    now = queue_store.now()
    per_minute = _processed_per_minute(queue_store.throughput(window_seconds=HOUR, bucket_seconds=60))
    processed = sum(point["processed"] for point in per_minute)
    timeouts = {info.name: info.job_timeout for info in stats.queues}  # each queue's stored timeout
    counts = {queue: {s.value: by_status.get(s.value, 0) for s in Status} for queue, by_status in stats.counts.items()}
    return {
        "at": render.iso(now),
        "counts": counts,
        "totals": {s.value: stats.total(s) for s in Status},
        "oldest_waiting_seconds": stats.oldest_waiting_seconds,
        "running": [render.running_json(job, timeouts.get(job.queue, settings.job_timeout)) for job in stats.running],
        "processed_last_hour": processed,
        "processed_per_minute": round(processed / 60, 2),
        "per_minute": per_minute,
        "deliveries": {name: stats.deliveries.get(name, 0) for name in ("pending", "delivered", "undeliverable")},
        "queues": [render.queue_json(info) for info in stats.queues],
        "replication": {**asdict(stats.replication), "guarantee": stats.replication.describe()},
        # manual_intervention split: jobs no one decided on yet, and jobs an operator failed (`pq fail`).
        "manual_intervention": {
            queue: {
                "waiting_for_a_person": by_status[Status.MANUAL_INTERVENTION.value]
                - stats.operator_failed.get(queue, 0),
                "failed_by_an_operator": stats.operator_failed.get(queue, 0),
            }
            for queue, by_status in counts.items()
        },
        "calibration": {
            c.queue: {
                "started": c.started,
                "before_p90": round(c.before_p90, 3),
                "before_latest": round(c.before_latest, 3),
            }
            for c in queue_store.calibration()
        },
    }


def _processed_per_minute(points: list[ThroughputPoint]) -> list[dict[str, Any]]:
    return [
        {"minute": render.iso(point.bucket_start), "processed": point.count}
        for point in points
        if point.status == Status.PROCESSED
    ]


def sparkline(per_minute: list[dict[str, Any]], now: datetime) -> str:
    """Processed jobs in each of the last 60 minutes, oldest on the left."""
    counts = [0] * 60
    for point in per_minute:
        started = datetime.fromisoformat(point["minute"])
        age = int((now - started).total_seconds() // 60)
        if 0 <= age < 60:
            counts[59 - age] += point["processed"]
    top = max(counts) or 1
    return "".join(SPARKS[min(len(SPARKS) - 1, count * len(SPARKS) // (top + 1))] if count else " " for count in counts)


def view(data: dict[str, Any]) -> RenderableType:
    """The stats for people: counts per queue, then one line per measure."""
    return Group(_counts_table(data), _summary_table(data))


def _counts_table(data: dict[str, Any]) -> Table:
    """A row per status, a column per queue: narrow enough for a terminal with a few queues."""
    queues = sorted(data["counts"])
    table = output.table("status", *queues, "total")
    for status in Status:
        cells = [str(data["counts"][queue][status.value]) for queue in queues]
        table.add_row(
            output.status_text(status),
            *cells,
            str(data["totals"][status.value]),
            end_section=status == list(Status)[-1],
        )
    # manual_intervention apart: those still waiting for a person, and those an operator failed on purpose.
    split = data["manual_intervention"]
    for key, label in (
        ("waiting_for_a_person", "manual: needs a person"),
        ("failed_by_an_operator", "manual: failed by an operator"),
    ):
        cells = [str(split[queue][key]) for queue in queues]
        table.add_row(label, *cells, str(sum(split[queue][key] for queue in queues)))
    return table


def _summary_table(data: dict[str, Any]) -> Table:
    table = output.table("measure", "value")
    table.show_header = False
    table.add_row("oldest waiting", render.duration(data["oldest_waiting_seconds"]))
    for job in data["running"] or [None]:
        table.add_row("running", _running_line(job))
    now = datetime.fromisoformat(data["at"])
    processed = f"{data['processed_last_hour']} in the last hour ({data['processed_per_minute']:.2f} per minute)"
    table.add_row("processed", processed)
    table.add_row("last 60 min", Text(sparkline(data["per_minute"], now)))
    deliveries = ", ".join(f"{name} {count}" for name, count in data["deliveries"].items())
    table.add_row("callbacks", deliveries)
    for queue in data["queues"]:
        table.add_row("queue", output.plain(f"{queue['name']}: {render.queue_policy_line(queue)}"))
    table.add_row("replication", output.plain(data["replication"]["guarantee"]))
    for queue, calibration in data["calibration"].items():
        if calibration["started"]:
            shares = f"{calibration['before_p90']:.0%} by their p90, {calibration['before_latest']:.0%} by their latest"
            line = f"{queue}: {shares} (of the last {calibration['started']} predicted at submission)"
            table.add_row("started", output.plain(line))
    return table


def _running_line(job: dict[str, Any] | None) -> Text:
    if job is None:
        return Text("nothing")
    elapsed = render.duration(job["elapsed_seconds"])
    timeout = render.duration(job["timeout_seconds"])
    lease = render.duration(job["lease_remaining_seconds"])
    worker = job["worker_id"] or "-"
    return Text(f"job {job['id']} ({job['queue']}) on {worker}: {elapsed} of {timeout} timeout, lease {lease} left")


def stats(
    ctx: typer.Context,
    as_json: JsonOption = False,
    watch: Annotated[bool, typer.Option("--watch", "-w", help="Refresh until Ctrl-C.")] = False,
    interval: Annotated[float, typer.Option(min=0.1, help="Seconds between refreshes with --watch.")] = 2.0,
    count: Annotated[int, typer.Option(min=0, help="With --watch: stop after this many refreshes (0: never).")] = 0,
) -> None:
    """Show counts, running jobs and throughput.

    Counts by queue and status, the oldest waiting age, each running job with its elapsed time
    against the timeout, and jobs processed per minute over the last hour.
    """
    settings = admin(ctx).settings
    queue_store = insights(ctx)
    if not watch:
        data = snapshot(queue_store, settings)
        if as_json:
            output.emit_json(data)
        else:
            output.show(view(data))
        return
    with suppress(KeyboardInterrupt):  # Ctrl-C ends a watch; it is not an error
        _watch(queue_store, settings, as_json, interval, count)


def _watch(queue_store: Insights, settings: Settings, as_json: bool, interval: float, count: int) -> None:
    """Refresh in place on a terminal; elsewhere write one snapshot after another (JSON: one per line)."""
    screen = output.console()
    live = Live(console=screen, auto_refresh=False) if screen.is_terminal and not as_json else None
    rounds = 0
    with live or nullcontext():
        while True:
            data = snapshot(queue_store, settings)
            if as_json:
                output.emit_json(data, one_line=True)
            elif live is not None:
                live.update(view(data), refresh=True)
            else:
                if rounds:
                    output.say("")  # piped: a blank line between snapshots
                output.show(view(data))
            rounds += 1
            if count and rounds >= count:
                return
            time.sleep(interval)
