"""The stable JSON shapes of `pq --json` and the short texts of its tables.

Every datetime is ISO 8601 in UTC with a `Z`; every list is a JSON array. docs/cli.md documents
these shapes, so a field is only ever added, never renamed.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from pqueue import (
    ApiKey,
    Delivery,
    Estimate,
    Event,
    Hold,
    Job,
    Partner,
    PartnerEvent,
    QueueInfo,
    RunningJob,
    Status,
    Wait,
    Worker,
)

Obj = dict[str, Any]  # a JSON object pq writes


def iso(moment: datetime | None) -> str | None:
    """ISO 8601 in UTC, e.g. 2025-01-31T09:15:02.125Z."""
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def human_time(moment: datetime | None) -> str:
    """A UTC time to the second, for people."""
    if moment is None:
        return "-"
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") + "Z"


def job_json(job: Job, hold: Hold | None = None) -> Obj:
    """One job, as `pq list --json` and `pq export --format jsonl` write it; a job a consumer
    holds to start next has `held` too (`pq list` and `pq show` only: a hold is not kept)."""
    fields = {
        "id": job.id,
        "queue": job.queue,
        "status": job.status.value,
        "priority": job.priority,
        "attempts": job.attempts,
        "max_attempts": job.max_attempts,
        "lease_id": job.lease_id,
        "worker_id": job.worker_id,
        "created_at": iso(job.created_at),
        "run_after": iso(job.run_after),
        "started_at": iso(job.started_at),
        "finished_at": iso(job.finished_at),
        "lease_expires_at": iso(job.lease_expires_at),
        "payload": job.payload,
        "result": job.result,
        "error": job.error,
        "operator_reason": job.operator_reason,
        "callback_url": job.callback_url,
        "idempotency_key": job.idempotency_key,
        "stop_request": job.stop_request.value if job.stop_request else None,
        "stop_reason": job.stop_reason,
        "partner": job.partner,
        "agent_status": job.agent_status.value if job.agent_status else None,
    }
    return fields if hold is None else {**fields, "held": hold_json(hold)}


def hold_json(hold: Hold) -> Obj:
    """Who holds a waiting job to start next in its seat, behind which running job, since when."""
    return {"worker_id": hold.worker_id, "behind_job": hold.behind_job, "held_at": iso(hold.held_at)}


def held_words(hold: Hold) -> str:
    """A held job's state for people: whose seat it starts in, and after which job."""
    return (
        f"held by consumer {hold.worker_id} to start right after job {hold.behind_job}"
        f" (since {human_time(hold.held_at)})"
    )


def delivery_json(delivery: Delivery | None) -> Obj | None:
    """A job's callback delivery, or None when it has none."""
    if delivery is None:
        return None
    return {
        "id": delivery.id,
        "url": delivery.url,
        "status": delivery.status.value,
        "attempts": delivery.attempts,
        "lease_id": delivery.lease_id,
        "idempotency_key": delivery.idempotency_key,
        "last_status_code": delivery.last_status_code,
        "last_error": delivery.last_error,
        "created_at": iso(delivery.created_at),
        "next_attempt_at": iso(delivery.next_attempt_at),
        "last_attempt_at": iso(delivery.last_attempt_at),
        "delivered_at": iso(delivery.delivered_at),
    }


def event_json(event: Event) -> Obj:
    """One step of a job's timeline."""
    return {
        "at": iso(event.at),
        "from_status": event.from_status.value if event.from_status else None,
        "to_status": event.to_status.value,
        "actor": event.actor,
        "message": event.message,
    }


def job_detail_json(job: Job, events: list[Event], wait: Wait | None = None, hold: Hold | None = None) -> Obj:
    """`pq show --json`: the job, its delivery and its timeline; while it waits or runs, its wait;
    while a consumer holds it, `held`."""
    detail = {**job_json(job), "delivery": delivery_json(job.delivery), "events": [event_json(e) for e in events]}
    if wait is not None:
        detail["wait"] = wait_json(wait)
    return detail if hold is None else {**detail, "held": hold_json(hold)}


def wait_json(wait: Wait) -> Obj:
    """A job's wait in the fields `GET /jobs/{id}` answers (docs/producer.md)."""
    position = wait.position
    return {
        "position": None
        if position is None
        else {"own": position.own, "others": position.others, "total": position.total, "exact": position.exact},
        "eta_start": estimate_json(wait.eta_start) if wait.eta_start else None,
        "eta_finish": estimate_json(wait.eta_finish),
        "confidence": wait.confidence,
        "reasons": [
            {
                "code": reason.code,
                "message": reason.message,
                "until": iso(reason.until),
                **{key: iso(value) if isinstance(value, datetime) else value for key, value in reason.details.items()},
            }
            for reason in wait.reasons
        ],
        "computed_at": iso(wait.computed_at),
    }


def estimate_json(estimate: Estimate) -> Obj:
    fields = {"p50": iso(estimate.p50), "p90": iso(estimate.p90), "latest": iso(estimate.latest)}
    return fields if estimate.why is None else {**fields, "why": estimate.why}


def worker_json(worker: Worker) -> Obj:
    """One registered consumer or relay."""
    return {
        "id": worker.id,
        "kind": worker.kind,
        "host": worker.host,
        "pid": worker.pid,
        "queue": worker.queue,
        "started_at": iso(worker.started_at),
        "last_seen": iso(worker.last_seen),
        "seen_seconds_ago": round(worker.seen_seconds_ago, 3),
        "current_job_id": worker.current_job_id,
    }


def queue_json(info: QueueInfo) -> Obj:
    """A queue's seats, pause flag and policy (stored, else the PQ_ default)."""
    return {
        "name": info.name,
        "seats": info.seats,
        "paused": info.paused,
        "max_attempts": info.max_attempts,
        "job_timeout": info.job_timeout,
        "lease_seconds": info.lease_seconds,
        "retry_backoff_seconds": info.retry_backoff_seconds,
        "timeout_retries": info.timeout_retries,
    }


def queue_policy_line(queue: Obj) -> str:
    """'2 seats, claiming, 3 attempts, 1h timeout, 30s lease, 10s backoff' from a queue_json
    (and ', 1 timeout retry' when a timed-out job may run again)."""
    seats = f"{queue['seats']} seat" + ("s" if queue["seats"] != 1 else "")
    attempts = f"{queue['max_attempts']} attempt" + ("s" if queue["max_attempts"] != 1 else "")
    retries = queue.get("timeout_retries") or 0
    return (
        f"{seats}, {'paused' if queue['paused'] else 'claiming'}, {attempts}, "
        f"{duration(queue['job_timeout'])} timeout, {duration(queue['lease_seconds'])} lease, "
        f"{duration(queue['retry_backoff_seconds'])} backoff"
        + (f", {retries} timeout retr{'y' if retries == 1 else 'ies'}" if retries else "")
    )


def running_json(running: RunningJob, timeout_seconds: float) -> Obj:
    """A job under_process with its elapsed time against the timeout."""
    return {
        "id": running.id,
        "queue": running.queue,
        "worker_id": running.worker_id,
        "started_at": iso(running.started_at),
        "elapsed_seconds": round(running.elapsed_seconds, 3),
        "timeout_seconds": timeout_seconds,
        "lease_expires_at": iso(running.lease_expires_at),
        "lease_remaining_seconds": round(running.lease_remaining_seconds, 3),
        "attempts": running.attempts,
    }


def partner_json(partner: Partner) -> Obj:
    """A partner's settings and its use of the seats, as `pq partner list --json` writes it."""
    return {
        "name": partner.name,
        "weight": partner.weight,
        "max_running": partner.max_running,
        "rate_per_minute": partner.rate_per_minute,
        "disabled_at": iso(partner.disabled_at),
        "created_at": iso(partner.created_at),
        "has_callback_secret": partner.has_callback_secret,
        "waiting": partner.waiting,
        "running": partner.running,
        "seat_seconds_hour": round(partner.seat_seconds_hour, 3),
        "seat_seconds_day": round(partner.seat_seconds_day, 3),
        "share_day": round(partner.share_day, 4),
    }


def partner_line(partner: Partner) -> str:
    """'acme: weight 2, at most 1 running, 60/min, enabled' for people."""
    cap = f"at most {partner.max_running} running" if partner.max_running else "no cap on running jobs"
    rate = f"{partner.rate_per_minute}/min" if partner.rate_per_minute else "no rate limit"
    state = f"disabled since {human_time(partner.disabled_at)}" if partner.disabled_at else "enabled"
    return f"{partner.name}: weight {partner.weight:g}, {cap}, {rate}, {state}"


def key_json(key: ApiKey) -> Obj:
    """A key as listings show it: never its secret."""
    return {
        "id": key.id,
        "partner": key.partner,
        "prefix": key.prefix,
        "scopes": list(key.scopes),
        "name": key.name,
        "created_at": iso(key.created_at),
        "expires_at": iso(key.expires_at),
        "last_used_at": iso(key.last_used_at),
        "revoked_at": iso(key.revoked_at),
    }


def partner_event_json(event: PartnerEvent) -> Obj:
    """One change to a partner or its keys."""
    return {"at": iso(event.at), "actor": event.actor, "message": event.message}


def duration(seconds: float | None) -> str:
    """A short age for people: 45s, 12m 5s, 3h 5m, 2d 4h."""
    if seconds is None:
        return "-"
    whole = max(0, int(seconds))
    days, rest = divmod(whole, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h" if hours else f"{days}d"
    if hours:
        return f"{hours}h {minutes}m" if minutes else f"{hours}h"
    if minutes:
        return f"{minutes}m {secs}s" if secs else f"{minutes}m"
    return f"{secs}s"


def compact(value: Any) -> str:
    """A JSON value on one line."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def shorten(text: str | None, width: int) -> str:
    """The start of a text on one line, with … when cut."""
    if not text:
        return ""
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def why(job: Job) -> str:
    """The last error cell of a list: what an operator decided and why first (`failed by an
    operator: …`), then the last error's line."""
    error = shorten(last_line(job.error), 60)
    if not (job.operator_verdict and job.operator_reason):
        return error
    decided = f"{job.operator_verdict}: {shorten(job.operator_reason, 40)}"
    return f"{decided} · {error}" if error else decided


def last_line(error: str | None) -> str | None:
    """The line of an error worth a table cell: its last (the exception itself)."""
    if not error or not error.strip():
        return None
    return error.strip().splitlines()[-1]


def status_word(status: Status | str) -> str:
    """A status as operators read it."""
    return Status(status).value
