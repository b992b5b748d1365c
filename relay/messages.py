"""The JSON messages on the broker: a job sent to agents, and the status an agent sends back.

Job (relay -> outbox), one per claim:
    {"job_id": 42, "lease_id": 7, "queue": "remote", "payload": <any JSON>,
     "attempt": 1, "max_attempts": 3, "lease_seconds": 600.0}

Status (agent -> inbox), keyed by the job id and the lease id the job message carried:
    {"job_id": 42, "lease_id": 7, "status": "processing"}
    {"job_id": 42, "lease_id": 7, "status": "success", "result": <any JSON>}
    {"job_id": 42, "lease_id": 7, "status": "error", "error": "what went wrong"}
    {"job_id": 42, "lease_id": 7, "status": "released"}      (given back unfinished: sent again)
An optional "agent" string names the sender in the relay's log.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the sample agent imports this module and needs nothing of pqueue
    from pqueue import Job

STATUSES = ("processing", "success", "error", "released")
CONTENT_TYPE = "application/json"


class MalformedStatus(ValueError):
    """A status message the relay cannot read; it goes to the dead queue with this reason."""


@dataclass(frozen=True)
class StatusMessage:
    """One status report from an agent."""

    job_id: int
    lease_id: int
    status: str
    result: Any = None
    error: str | None = None
    agent: str | None = None


def job_message(job: Job, lease_seconds: float) -> bytes:
    """The body published to the outbox for one claim."""
    body = {
        "job_id": job.id,
        "lease_id": job.lease_id,
        "queue": job.queue,
        "payload": job.payload,
        "attempt": job.attempts,
        "max_attempts": job.max_attempts,
        "lease_seconds": lease_seconds,
    }
    return json.dumps(body, separators=(",", ":")).encode()


def status_message(
    job_id: int, lease_id: int, status: str, *, result: Any = None, error: str | None = None, agent: str | None = None
) -> bytes:
    """The body an agent publishes to the inbox (the sample agent uses it; any agent may build its own)."""
    body: dict[str, Any] = {"job_id": job_id, "lease_id": lease_id, "status": status}
    if status == "success":
        body["result"] = result
    if status == "error":
        body["error"] = error
    if agent is not None:
        body["agent"] = agent
    return json.dumps(body, separators=(",", ":")).encode()


def _reject_constant(name: str) -> Any:
    raise MalformedStatus(f"{name} is not JSON")


def _positive_int(body: dict[str, Any], field: str) -> int:
    value = body.get(field)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise MalformedStatus(f"{field} must be a positive integer, got {value!r}")
    return value


def parse_status(raw: bytes) -> StatusMessage:
    """Read and check one status message; MalformedStatus says what is wrong with it."""
    try:
        body = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except UnicodeDecodeError:
        raise MalformedStatus("body is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise MalformedStatus(f"body is not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    except RecursionError:
        raise MalformedStatus("body is nested too deeply") from None
    if not isinstance(body, dict):
        raise MalformedStatus(f"body must be a JSON object, got {type(body).__name__}")
    job_id = _positive_int(body, "job_id")
    lease_id = _positive_int(body, "lease_id")
    status = body.get("status")
    if status not in STATUSES:
        raise MalformedStatus(f"status must be one of {', '.join(STATUSES)}, got {status!r}")
    error = body.get("error")
    if status == "error" and (not isinstance(error, str) or not error.strip()):
        raise MalformedStatus("an error status needs a non-empty error string")
    agent = body.get("agent")
    if agent is not None and not isinstance(agent, str):
        raise MalformedStatus(f"agent must be a string, got {agent!r}")
    return StatusMessage(job_id, lease_id, status, body.get("result"), error if status == "error" else None, agent)
