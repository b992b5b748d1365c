"""Rows to values: what the store hands out, built from what its statements return."""

from __future__ import annotations

import json
from typing import Any

from pqueue.models import Delivery, Event, Hold, Job, QueueInfo, Replication, RunningJob, Worker
from pqueue.partner import partner_error
from pqueue.settings import Settings
from pqueue.states import AgentStatus, DeliveryStatus, Status


def job_from(row: Any, delivery: Delivery | None = None) -> Job:
    """A pq_jobs row (every column) as a Job."""
    return Job(
        id=row.id,
        queue=row.queue,
        payload=row.payload,
        status=Status(row.status),
        priority=row.priority,
        attempts=row.attempts,
        max_attempts=row.max_attempts,
        lease_id=row.lease_id,
        worker_id=row.worker_id,
        result=row.result,
        error=row.error,
        callback_url=row.callback_url,
        idempotency_key=row.idempotency_key,
        created_at=row.created_at,
        run_after=row.run_after,
        started_at=row.started_at,
        finished_at=row.finished_at,
        lease_expires_at=row.lease_expires_at,
        stop_request=Status(row.stop_request) if row.stop_request else None,
        stop_reason=row.stop_reason,
        delivery=delivery,
        lease_seconds=row.lease_ms / 1000 if row.lease_ms is not None else None,
        partner=row.partner,
        operator_reason=row.operator_reason,
        agent_status=_agent_status(row),
    )


def _agent_status(row: Any) -> AgentStatus | None:
    """The agents' word for the job, only while the claim it was said of runs."""
    word = row.agent_status
    return AgentStatus(word) if word and row.status == Status.UNDER_PROCESS.value else None


def delivery_from(row: Any) -> Delivery:
    """A pq_deliveries row as a Delivery."""
    return Delivery(
        id=row.id,
        job_id=row.job_id,
        lease_id=row.lease_id,
        url=row.url,
        body=row.body,
        status=DeliveryStatus(row.status),
        attempts=row.attempts,
        last_status_code=row.last_status_code,
        last_error=row.last_error,
        created_at=row.created_at,
        next_attempt_at=row.next_attempt_at,
        last_attempt_at=row.last_attempt_at,
        delivered_at=row.delivered_at,
    )


def event_from(row: Any) -> Event:
    """A pq_events row as an Event."""
    return Event(
        id=row.id,
        job_id=row.job_id,
        from_status=Status(row.from_status) if row.from_status else None,
        to_status=Status(row.to_status),
        at=row.at,
        actor=row.actor,
        message=row.message,
    )


def hold_from(row: Any) -> Hold:
    """A pq_holds row as a Hold."""
    return Hold(job_id=row.job_id, worker_id=row.worker_id, behind_job=row.behind_job, held_at=row.held_at)


def running_from(row: Any) -> RunningJob:
    """A row of reads.running (a job under_process with its elapsed and remaining seconds)."""
    return RunningJob(
        id=row.id,
        queue=row.queue,
        worker_id=row.worker_id,
        started_at=row.started_at,
        elapsed_seconds=float(row.elapsed or 0),
        lease_expires_at=row.lease_expires_at,
        lease_remaining_seconds=float(row.remaining or 0),
        attempts=row.attempts,
    )


def worker_from(row: Any) -> Worker:
    """A row of reads.workers (a registry row with its age and current job)."""
    return Worker(
        id=row.id,
        kind=row.kind,
        host=row.host,
        pid=row.pid,
        queue=row.queue,
        started_at=row.started_at,
        last_seen=row.last_seen,
        seen_seconds_ago=float(row.seen),
        current_job_id=row.job,
    )


def callback_body(job: Any) -> str:
    """The JSON a job's callback POSTs: its outcome as the partner sees it."""
    outcome: dict[str, Any] = {"id": job.id, "status": job.status}
    if job.status == Status.PROCESSED.value:
        outcome["result"] = job.result
    else:
        outcome["error"] = partner_error(job.error)
        if job.operator_reason is not None:
            outcome["operator_reason"] = job.operator_reason
    outcome["attempts"] = job.attempts
    finished = job.finished_at
    outcome["finished_at"] = finished.isoformat().replace("+00:00", "Z") if finished else None
    return json.dumps(outcome, separators=(",", ":"), sort_keys=True)


def backoff_of(row: Any, defaults: Settings) -> float:
    """The retry backoff a failed attempt of this job waits by: its queue's stored one (read
    with the row as queue_backoff), else this program's PQ_RETRY_BACKOFF_SECONDS."""
    stored = row.queue_backoff
    return defaults.retry_backoff_seconds if stored is None else float(stored)


def timeout_retries_of(row: Any, defaults: Settings) -> int:
    """The timeout retries a job's queue allows: stored (read with the row as
    queue_timeout_retries), else this program's PQ_TIMEOUT_RETRIES."""
    stored = row.queue_timeout_retries
    return defaults.timeout_retries if stored is None else int(stored)


def attempt_limit_of(row: Any) -> int:
    """The attempts a job may take, judged when an attempt fails: its submitter's own limit, else
    its queue's stored one as it is now (read with the row as queue_max_attempts), so a limit an
    operator lowered while the job ran or waited holds; else the limit its claim copied in."""
    stored = row.queue_max_attempts
    if row.max_attempts_given or stored is None:
        return int(row.max_attempts)
    return int(stored)


def queue_info_from(name: str, row: Any, defaults: Settings) -> QueueInfo:
    """A queue's stored values, each one missing taken from this program's PQ_ defaults."""

    def stored(column: str, default: Any) -> Any:
        value = getattr(row, column) if row is not None else None
        return default if value is None else value

    return QueueInfo(
        name,
        stored("seats", defaults.max_running),
        bool(stored("paused", False)),
        max_attempts=stored("max_attempts", defaults.max_attempts),
        job_timeout=float(stored("job_timeout", defaults.job_timeout)),
        lease_seconds=float(stored("lease_seconds", defaults.lease_seconds)),
        retry_backoff_seconds=float(stored("retry_backoff_seconds", defaults.retry_backoff_seconds)),
        timeout_retries=int(stored("timeout_retries", defaults.timeout_retries)),
    )


# The commit levels at which a commit waits for the synchronous standbys that are named.
WAITS_FOR_STANDBYS = ("on", "remote_write", "remote_apply")


def replication_from(row: Any) -> Replication:
    """Reads.replication's row as the guarantee in force: synchronous when the session's commits
    wait for named standbys, asynchronous when standbys stream without, else none."""
    level, names, standbys, synchronous, hidden = row
    if names and level in WAITS_FOR_STANDBYS:
        mode = "synchronous"
    elif standbys:
        mode = "asynchronous"
    else:
        mode = "none"
    return Replication(
        mode=mode,
        synchronous_commit=level,
        standbys=int(standbys),
        synchronous_standbys=None if hidden else int(synchronous),
        standby_names=names,
    )
