"""What `make run` tells the person before and after the programs start: the database, the
queue's policy as the programs will apply it (with every PQ_ value that will not be applied and
the command that applies it), and where everything answers once it does."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from admin.queue_options import overruled_line
from pqueue import QueueInfo, Settings, overruled, policy_defaults


def duration(seconds: float) -> str:
    """90 -> '1m30s', 3600 -> '1h', 5 -> '5s'."""
    whole = int(seconds)
    if whole != seconds:
        return f"{seconds:g}s"
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{value}{unit}" for value, unit in ((hours, "h"), (minutes, "m"), (secs, "s")) if value]
    return "".join(parts) or "0s"


def policy_line(values: dict[str, float]) -> str:
    seats, attempts, retries = int(values["seats"]), int(values["max_attempts"]), int(values["timeout_retries"])
    return (
        f"{seats} seat{'s' if seats != 1 else ''}, {attempts} attempt{'s' if attempts != 1 else ''}, "
        f"{duration(values['job_timeout'])} job timeout ("
        + (f"{retries} timeout retr{'y' if retries == 1 else 'ies'}" if retries else "a timed-out job is not retried")
        + f"), {duration(values['lease_seconds'])} lease, {duration(values['retry_backoff_seconds'])} retry backoff"
    )


def policy_lines(settings: Settings, stored: QueueInfo | None) -> list[str]:
    """The queue's policy as the consumer will apply it, and each PQ_ value given that it will not."""
    queue = settings.queue
    if stored is None:
        values = policy_defaults(settings)
        return [f"queue {queue}: {policy_line(values)} (new: the consumer stores these at its first start)"]
    values = {name: getattr(stored, name) for name in policy_defaults(settings)}
    lines = [f"queue {queue}: {policy_line(values)} (stored in the database; `pq queue set {queue}` changes it)"]
    if stored.paused:
        lines.append(f"queue {queue} is paused: nothing runs until `pq resume --queue {queue}`")
    lines.extend(f"not applied: {overruled_line(said)}" for said in overruled(settings, stored))
    return lines


def tool(name: str) -> str:
    """How the person runs one of this installation's commands from the current directory."""
    path = Path(sys.executable).parent / name
    try:
        shown = os.path.relpath(path)
    except ValueError:
        return str(path)
    return str(path) if shown.startswith("..") else shown


def where(settings: Settings, config: Path) -> list[str]:
    """The banner: where each program answers, and how to look at and steer the system."""
    scheme = "https" if settings.tls_certfile and settings.tls_keyfile else "http"
    api = f"{scheme}://{settings.producer_host}:{settings.producer_port}"
    ctl = f"{tool('supervisorctl')} -c {_shown(config)}"
    home = settings.resolved_home
    pq = f"{tool('pq')} list" if home == Path.cwd().resolve() else f"PQ_HOME={home} {tool('pq')} list"
    if settings.database_url:
        pq += "   (with the same PQ_DATABASE_URL)"
    return [
        f"pqueue is running (Ctrl-C stops it; logs in {_shown(home / 'var' / 'log')}/):",
        f"  API        {api}/jobs",
        f"  API docs   {api}/docs",
        f"  dashboard  http://{settings.dashboard_host}:{settings.dashboard_port}",
        f"  jobs       {pq}",
        f"  status     {ctl} status",
        f"  sample traffic: {ctl} start demo_feeder",
    ]


def _shown(path: Path) -> str:
    shown = os.path.relpath(path)
    return str(path) if shown.startswith("..") else shown
