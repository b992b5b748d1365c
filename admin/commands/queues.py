"""The queue as a whole: `pq pause`, `pq resume`, `pq queue show/set`, `pq workers`, `pq relay go`."""

from __future__ import annotations

from typing import Annotated

import typer

from admin import output, render
from admin.commands.jobs import JsonOption
from admin.context import insights, operations, store
from admin.parsing import parse_seconds
from admin.queue_options import QUEUE_SET_OPTIONS
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
    info = operations(ctx).pause(queue, actor="admin")
    _report_queue(info, f"queue {info.name} paused: consumers claim nothing more; a running job finishes", as_json)


def resume(ctx: typer.Context, queue: QueueName = None, as_json: JsonOption = False) -> None:
    """Let consumers claim from a queue again."""
    info = operations(ctx).resume(queue, actor="admin")
    _report_queue(info, f"queue {info.name} resumed: consumers claim from it again", as_json)


QueueArgument = Annotated[str, typer.Argument(help="The queue.")]
SecondsOption = {"parser": parse_seconds, "metavar": "SECONDS"}


def show_queue(ctx: typer.Context, name: QueueArgument, as_json: JsonOption = False) -> None:
    """Show a queue's seats, pause flag and policy.

    Each value is the one stored in the database, which every host reads; a value never set
    is this host's PQ_ default (PQ_MAX_RUNNING, PQ_MAX_ATTEMPTS, PQ_JOB_TIMEOUT, PQ_LEASE_SECONDS,
    PQ_RETRY_BACKOFF_SECONDS).
    """
    queue_store = store(ctx)
    info = queue_store.queue_settings(name) or queue_store.set_queue_policy(name)
    _show_policy(info, as_json)


def set_queue(
    ctx: typer.Context,
    name: QueueArgument,
    seats: Annotated[int | None, typer.Option(help="Jobs of the queue under_process at once.")] = None,
    max_attempts: Annotated[int | None, typer.Option(help="Attempts before manual_intervention.")] = None,
    timeout: Annotated[
        float | None, typer.Option(**SecondsOption, help="Seconds before a running algorithm is killed: 90, 30m.")
    ] = None,
    lease: Annotated[
        float | None, typer.Option(**SecondsOption, help="Lease length: a consumer silent this long loses its job.")
    ] = None,
    backoff: Annotated[
        float | None, typer.Option(**SecondsOption, help="Base of the backoff before a crashed job is retried.")
    ] = None,
    timeout_retries: Annotated[
        int | None,
        typer.Option(help="Times a job that ran into the timeout is run again (0: it waits in manual_intervention)."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Store a queue's policy in the database, for every host.

    Only the options given change; each holds from the next claim. A bad value is refused and
    nothing is stored.
    """
    if all(value is None for value in (seats, max_attempts, timeout, lease, backoff, timeout_retries)):
        raise typer.BadParameter(f"give at least one of {', '.join(QUEUE_SET_OPTIONS.values())}")
    info = operations(ctx).set_queue_policy(
        name,
        seats=seats,
        max_attempts=max_attempts,
        job_timeout=timeout,
        lease_seconds=lease,
        retry_backoff_seconds=backoff,
        timeout_retries=timeout_retries,
    )
    _show_policy(info, as_json)


def _show_policy(info: QueueInfo, as_json: bool) -> None:
    data = render.queue_json(info)
    if as_json:
        output.emit_json({**data, "ended": list(info.ended)} if info.ended else data)
        return
    output.say(f"queue {info.name}: {render.queue_policy_line(data)}")
    if info.ended:
        ids = ", ".join(str(job_id) for job_id in info.ended)
        output.say(f"moved to manual_intervention, their attempts already at the new limit {info.max_attempts}: {ids}")


RelayQueue = Annotated[
    str | None, typer.Option("--queue", "-q", help="The queue to go (default: the one queue a relay waits on).")
]


def relay_go(ctx: typer.Context, queue: RelayQueue = None, as_json: JsonOption = False) -> None:
    """Let the relay feed its queue.

    Resumes the queue named by --queue, else the one queue a registered relay waits on
    (`pq-relay --wait-for-go`): the broker relay waits for this before it sends jobs to the
    remote agents. A go never creates a queue; when several wait, name one.
    """
    info = operations(ctx).relay_go(queue, actor="admin")
    _report_queue(info, f"queue {info.name} resumed: the relay feeds it to the remote agents", as_json)


def workers(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """List registered consumers and relays.

    Each with its host, pid, queue, when it started, when it was last seen and its current job.
    """
    found = insights(ctx).workers()
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
