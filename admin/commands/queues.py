"""The queue as a whole: `pq pause`, `pq resume`, `pq workers`, `pq relay go`."""

from __future__ import annotations

from typing import Annotated

import typer

from admin import output, render
from admin.commands.jobs import JsonOption
from admin.context import admin, store
from pqueue import QueueInfo

QueueName = Annotated[str | None, typer.Option("--queue", "-q", help="The queue (default PQ_QUEUE).")]


def _report_queue(info: QueueInfo, line: str, as_json: bool) -> None:
    if as_json:
        output.emit_json(render.queue_json(info))
    else:
        output.say(line)


def pause(ctx: typer.Context, queue: QueueName = None, as_json: JsonOption = False) -> None:
    """Stop consumers claiming from a queue.

    A running job finishes; nothing new starts until `pq resume`.
    """
    info = store(ctx).pause(queue, actor="admin")
    _report_queue(info, f"queue {info.name} paused: consumers claim nothing more; a running job finishes", as_json)


def resume(ctx: typer.Context, queue: QueueName = None, as_json: JsonOption = False) -> None:
    """Let consumers claim from a queue again."""
    info = store(ctx).resume(queue, actor="admin")
    _report_queue(info, f"queue {info.name} resumed: consumers claim from it again", as_json)


def relay_go(ctx: typer.Context, queue: QueueName = None, as_json: JsonOption = False) -> None:
    """Let the relay feed its queue.

    Resumes the relay's queue (PQ_RELAY_QUEUE unless --queue): the broker relay waits for this
    before it sends jobs to the remote agents.
    """
    name = queue or admin(ctx).settings.relay_queue
    info = store(ctx).resume(name, actor="admin")
    _report_queue(info, f"queue {info.name} resumed: the relay feeds it to the remote agents", as_json)


def workers(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """List registered consumers and relays.

    Each with its host, pid, queue, when it started, when it was last seen and its current job.
    """
    found = store(ctx).workers()
    if as_json:
        output.emit_json([render.worker_json(worker) for worker in found])
        return
    if not found:
        output.note("no consumer or relay is registered")
    table = output.table("id", "kind", "host", "pid", "queue", "started", "last seen", "job")
    for worker in found:
        table.add_row(
            output.plain(worker.id),
            output.plain(worker.kind),
            output.plain(worker.host),
            str(worker.pid),
            output.plain(worker.queue),
            render.human_time(worker.started_at),
            f"{render.duration(worker.seen_seconds_ago)} ago",
            str(worker.current_job_id) if worker.current_job_id is not None else "-",
        )
    output.show(table)
